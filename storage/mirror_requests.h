// File: storage/mirror_requests.h
// Copy requests (claim 10: copying on command from another machine) as
// `diskwire mirror --on-request` serves them and `diskwire mirror --request`
// makes them (docs/REPLICATION.md, "Modes"):
//
//   - on a directory source, files: the request is <from>/mirror/requests/ID,
//     the answer <from>/mirror/done/ID (MailboxCopier serves them);
//   - on a LUN source, which has no files, inbox messages: the request is
//     message ID in the inbox of process id MirrorRequestInbox(NAME), the
//     answer message "done" in the inbox MirrorAnswerInbox(NAME, ID).
//
// Process ids that start with kMirrorControlPrefix are the mirrors' own:
// a mirror never moves their messages to the target.

#ifndef DISKWIRE_STORAGE_MIRROR_REQUESTS_H_
#define DISKWIRE_STORAGE_MIRROR_REQUESTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace diskwire::storage {

inline constexpr char kMirrorControlPrefix[] = "mirror.";

// "mirror.NAME"
std::string MirrorRequestInbox(const std::string& name);
// "mirror.NAME.ID"
std::string MirrorAnswerInbox(const std::string& name, const std::string& id);

// Asks mirror NAME, copying from `from`, for one full copy and waits up to
// `timeout` for its answer, which it returns ("records N\nbytes B\n..."). A
// request nobody answered in time is withdrawn where it can be (a file; a
// LUN message stays until a mirror takes it) and DeadlineExceeded returned.
// `mac_key`: the source's key (empty for none).
absl::StatusOr<std::string> RequestMirrorCopy(const std::string& from,
                                              const std::string& name,
                                              const std::string& id,
                                              absl::Duration timeout,
                                              const std::string& mac_key);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_REQUESTS_H_
