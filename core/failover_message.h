// File: core/failover_message.h
// The inbox message a side posts to its peer's process when it moves a session
// to storage: the peer, which may have noticed nothing (a receiver that is not
// sending sees only silence), learns from it to fail over too and where to
// read.

#ifndef DISKWIRE_CORE_FAILOVER_MESSAGE_H_
#define DISKWIRE_CORE_FAILOVER_MESSAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/identity.h"

namespace diskwire {

struct FailoverMessage {
  SessionId session;
  Role sender_role = Role::kClient;
  uint64_t failover_offset =
      0;  // F: the sender writes its stream to the volume from here
  uint64_t delivered =
      0;  // bytes of the reverse direction the sender has delivered
  std::string from_process;  // the sender's process id (where to answer)
  uint32_t episode = 1;  // which failover of the session (absent: the first)
  // The sender's claim of the session (when it adopted it) and the claim it
  // knows of the receiver's: together with the process ids they name both
  // channels of this incarnation (core/identity.h, IncarnationTag).
  int64_t claim = 0;
  int64_t to_claim = 0;
  // Opening a connection over the volume (core/open_over_storage.cc): a
  // client's request names its two endpoints; the listener's process answers
  // "accepted" (the connection waits in the listener's queue, as TCP's
  // handshake would leave it) or "refused".
  std::string open_from;  // the client's address:port, in a request
  std::string open_to;    // the address:port it connected to
  std::string answer;     // "accepted" or "refused", in an answer
  // Why the sender moved, when the path did not fail: "exit" (its process
  // exits with bytes the peer has not acknowledged, and hands them to the
  // volume). Empty: the path failed. A peer that does not know the word logs
  // a plain failover.
  std::string cause;
  bool IsOpenRequest() const { return !open_to.empty(); }

  bool operator==(const FailoverMessage&) const = default;
};

std::string EncodeFailover(const FailoverMessage& m);
// InvalidArgument naming the field on anything malformed.
absl::StatusOr<FailoverMessage> DecodeFailover(absl::string_view payload);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_FAILOVER_MESSAGE_H_
