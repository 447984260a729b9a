// File: core/resume_link.h
// One attempt to take a session in STORAGE back to the network: the fresh TCP
// connection between the two engines and where its handshake stands
// (core/resume_handshake.h for the messages, core/resume.cc for the steps,
// docs/ARCHITECTURE.md "Resume" for why they are safe at any cut).
//
// Thread safety: owned by the session, touched by the engine loop only.

#ifndef DISKWIRE_CORE_RESUME_LINK_H_
#define DISKWIRE_CORE_RESUME_LINK_H_

#include <cstdint>
#include <string>

#include "core/resume_handshake.h"

namespace diskwire {

struct ResumeLink {
  enum class Phase {
    kConnecting,    // client: non-blocking connect under way
    kAwaitWelcome,  // client: hello sent
    kAwaitReady,    // both: frozen, our ready sent (client) / welcome sent
                    // (server), waiting for the peer's ready
    kAwaitCommit,   // server: frozen, ready sent, waiting for commit
  };

  int fd = -1;
  Phase phase = Phase::kConnecting;
  bool frozen = false;      // the session is RESUMING: hooks wait
  bool stalled = false;     // a test's fault: the link is no longer read
  std::string in;           // bytes of the next message read so far
  size_t handshake_in = 0;  // handshake bytes read from fd in all
  std::string client_challenge;
  std::string server_challenge;
  ResumeSecret secret;
  uint32_t episode = 0;
  int64_t deadline_ns = 0;  // the attempt is given up after this
  // Bytes taken back from the application's end of the socket pair, written
  // back there if the attempt is abandoned.
  std::string taken_back;
  uint64_t self_delivered = 0;  // what the application really consumed
  uint64_t peer_delivered = 0;  // server: the client's, from its ready
  uint64_t peer_kept_from = 0;  // the peer's ring tail, from hello / welcome

  std::string transcript() const { return client_challenge + server_challenge; }
};

// A connection accepted on the resume listener that has not yet said which
// session it is for.
struct PendingResumeLink {
  int fd = -1;
  std::string in;           // the hello so far
  int64_t deadline_ns = 0;  // closed if the hello is not whole by then
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_RESUME_LINK_H_
