// File: core/session.h
// One selected TCP connection, as the engine keeps it: its state, its stream
// offsets in each direction, the replay ring of bytes sent but not yet held by
// the peer, the reassembly of the bytes it receives, and — once it has failed
// over — the descriptors and volume channels that carry its stream.
//
// Thread safety: `send_mu` serialises the application's senders on the healthy
// path with the engine loop's appends in STORAGE; everything else that changes
// is guarded by `mu`. The engine loop is the only thread that touches the
// storage-side members (marked "loop").

#ifndef DISKWIRE_CORE_SESSION_H_
#define DISKWIRE_CORE_SESSION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "base/futex_lock.h"
#include "core/failure_detector.h"
#include "core/identity.h"
#include "core/reassembly.h"
#include "core/replay_ring.h"
#include "core/resume_link.h"
#include "core/session_report.h"
#include "core/storage_leg.h"
#include "core/tcp_probe.h"
#include "core/writer.h"
#include "storage/volume.h"

namespace diskwire {

enum class SessionState : uint8_t {
  kDirect,  // bytes over TCP; the engine only copies what is sent into the ring
  kFailingOver,  // the swap is under way: hooks wait for it
  kResuming,     // moving back to a fresh TCP connection: hooks wait for it
  kStorage,      // the application's fd is a socket pair end; bytes go over the
                 // volume
  kClosed,       // finished or failed; `error` says how
};

const char* SessionStateName(SessionState state);

// Keeps the last few thousand storage-path latencies for p50/p99/max.
class LagStats {
 public:
  void Add(int64_t us);
  // -1 for each figure when nothing was recorded.
  void Fill(SessionReport* report) const;

 private:
  static constexpr size_t kWindow = 4096;
  std::vector<int64_t> samples_;
  size_t next_ = 0;
  int64_t max_ = -1;
};

struct Session {
  Session(const Clock* clock, int64_t detect_ms, size_t replay_cap)
      : ring(replay_cap), detector(clock, detect_ms) {}

  // --- Identity, fixed at adoption. ---
  SessionId id;
  Role role = Role::kClient;
  Endpoints endpoints;
  bool endpoints_known = false;  // false until a non-blocking connect completes
  // When a non-blocking connect() began (monotonic); 0 once the engine
  // looked at it (core/open_over_storage.cc).
  int64_t connect_started_ns = 0;
  // When the connection was established and the session got its id
  // (monotonic); a failure soon after may precede the peer's heartbeat.
  int64_t adopted_ns = 0;
  std::string label;  // "10.0.0.1:4000->10.0.0.2:7000" for logs

  std::atomic<SessionState> state{SessionState::kDirect};
  // Shared with other processes (docs/ARCHITECTURE.md, "Forks and
  // inheritance"): a forked child's or a re-executed program's copy of a
  // connection is dormant until it sends or receives on it (no heartbeat
  // entry, no failure detection, no failover), and a process that holds a
  // claim yields it to a newer one. `maybe_shared`: a fork since adoption, or
  // inherited; its close then asks who else holds the socket before any FIN.
  std::atomic<bool> dormant{false};
  // This process forked since it last sent or received: its next call
  // re-reads what the socket has carried (the child may have written).
  std::atomic<bool> resync{false};
  std::atomic<bool> maybe_shared{false};
  std::atomic<int64_t> claim_ns{0};  // realtime of this process's claim
  // Bumped by every swap of the file behind the application's fd.
  std::atomic<uint32_t> generation{0};

  // Opened over the volume while the network was down
  // (core/open_over_storage.cc): the connect() waits for the listener's
  // answer. Meanwhile the session is in STORAGE but the loop neither reads
  // nor writes for it, and for a non-blocking connect the application's end
  // of the pair is held unwritable by `held_bytes` of filler.
  std::atomic<bool> opening{false};
  bool opened_over_storage = false;  // it began on the volume, no TCP yet
  int64_t open_deadline_ns = 0;
  int open_error = 0;  // what connect() fails with if no answer comes
  size_t held_bytes = 0;
  // Holds the client's port while the connection has no TCP socket.
  int reserve_fd = -1;

  // --- Send direction. ---
  // Taken on every send, hence a FutexLock (base/futex_lock.h): never waited
  // on with a condition.
  FutexLock send_mu;
  // Held across a non-blocking recv on the socket pair so that a resume never
  // races a read of it (which would make the delivered offset it reads
  // stale).
  absl::Mutex recv_mu;
  // Application threads inside a receive on the TCP socket (DIRECT), which
  // takes no lock: a swap waits them out (EngineImpl::WaitOutTcpReaders).
  std::atomic<int> readers_on_tcp{0};
  ReplayRing ring ABSL_GUARDED_BY(send_mu);
  // The application's fd names a TCP socket (DIRECT), not a socket pair.
  bool on_tcp ABSL_GUARDED_BY(send_mu) = true;
  // Stream offset of the next ring byte to write to the TCP socket: head()
  // but after a resume, when the bytes the peer lacks go first.
  uint64_t sent_to_socket ABSL_GUARDED_BY(send_mu) = 0;
  // The application ended its stream while the backlog was still unsent: the
  // FIN goes once sent_to_socket reaches head().
  bool fin_owed ABSL_GUARDED_BY(send_mu) = false;
  // The healthy send path trims the ring by the kernel's acknowledgement
  // (one ioctl) once its head passes this: every kEagerTrimBytes sent, so
  // that a connection holds its unacknowledged bytes, not a ring full of
  // acknowledged ones (memory; core/replay_ring.h frees passed chunks).
  uint64_t next_trim_head ABSL_GUARDED_BY(send_mu) = 0;
  static constexpr uint64_t kEagerTrimBytes = 128 << 10;
  // The ring's head when the loop last looked (CheckDirectSessions): a ring
  // that has not moved since is trimmed there, so an idle connection keeps
  // nothing the peer holds.
  uint64_t idle_check_head ABSL_GUARDED_BY(send_mu) = 0;
  // When CheckDirectSessions last sampled the socket, and whether that sample
  // was taken quiet (the loop's alone).
  int64_t last_sample_ns = 0;
  bool sampled_quiet = false;
  // Stream offset the application has read = tcpi delivered + in_adjust (the
  // socket's first stream byte after a resume, less its handshake bytes).
  int64_t in_adjust = 0;
  // Socket options the application set on the fd, replayed on the socket a
  // resume installs: (level, name) -> value bytes. Under mu.
  std::vector<std::pair<std::pair<int, int>, std::string>> sockopts;

  mutable absl::Mutex mu;
  absl::CondVar
      state_changed;  // signalled with mu held when state leaves kFailingOver
  int error ABSL_GUARDED_BY(mu) =
      0;  // errno reported to the application once kClosed
  // The peer's end of file is queued for the application (TCP's SOCK_DONE):
  // its reads end there, whatever ended the session after; `error` shows on
  // its writes only.
  bool eof_queued ABSL_GUARDED_BY(mu) = false;
  std::vector<int> names
      ABSL_GUARDED_BY(mu);  // fd numbers that name the session
  // The old TCP socket while the loop keeps it (StorageLeg::old_sock), for
  // the application's IPPROTO_TCP getsockopt calls, which answer from it; -1
  // otherwise. Under mu, so that the loop cannot close it under such a call.
  int old_sock_for_app ABSL_GUARDED_BY(mu) = -1;
  FailureDetector detector;

  // --- Storage path (loop). ---
  // What an event of the engine loop's epoll is about.
  struct LoopTag {
    enum Kind { kSocketPair, kOldSocket, kResumeLink, kPendingLink };
    Session* session;
    Kind kind;
    PendingResumeLink* pending = nullptr;  // for kPendingLink
  };
  LoopTag eng_tag{this, LoopTag::kSocketPair};
  LoopTag link_tag{this, LoopTag::kResumeLink};
  LoopTag old_tag{this, LoopTag::kOldSocket};
  // Everything the storage path holds for it, while it has one
  // (core/storage_leg.h).
  StorageLeg leg;
  bool shut_wr = false;  // the application shut down writing while DIRECT
  int64_t no_peer_until_ns = 0;  // don't look for a peer again before this
  // The socket's own keepalive and user timeout, before diskwire tuned them;
  // put back once no diskwire peer holds the connection (plain TCP then).
  std::optional<TcpProbe::Timeouts> app_timeouts;
  // Its connect runs under TcpProbe::BoundConnect until FinishAdoption.
  bool connect_bounded = false;
  bool plain_tcp = false;  // they were put back
  // The application's call already took the socket's error (an abort): SO_ERROR
  // reads 0.
  std::atomic<bool> abort_consumed{false};
  // In the engine's graveyard, its ring's memory was given back.
  std::atomic<bool> buffers_released{false};
  // Failover episodes this session has entered (1 at the first failover);
  // each has its own channels, so a record of an earlier one is never read.
  uint32_t episode = 0;
  // The resume attempt under way, when any (core/resume.cc).
  std::unique_ptr<ResumeLink> link;
  int64_t next_resume_ns = 0;  // don't dial before this
  // After the application closed a DIRECT session whose bytes the peer did not
  // all hold yet: the TCP socket, kept (its FIN sent) until they are
  // acknowledged or the session fails over.
  int linger_fd = -1;
  // The application closed with SO_LINGER {1, 0}: its end is a reset.
  bool app_aborted = false;
  uint64_t failover_offset = 0;  // F: our first byte written to the volume
  // Why this side moved when the path did not fail (FailoverMessage::cause),
  // for the announcement; "" when it failed.
  std::string failover_cause;
  std::string peer_process;   // who holds the other end, once known
  int64_t peer_claim_ns = 0;  // its claim: names its channel (0: unknown)
  uint64_t delivered =
      0;  // bytes handed to the application (ack offset we send)
  uint64_t peer_ack = 0;    // the peer's ack offset (trims the ring)
  int64_t detected_ns = 0;  // when the failure was detected (monotonic)
  // When the network last carried anything of the session before the
  // failure (monotonic): the last ACK or data from the peer. What an operator
  // sees as the outage starts here, detection included.
  int64_t stopped_ns = 0;
  // No diskwire process at the other end took the session (storage mode with
  // a plain peer): its old socket closes as TCP would, with a FIN.
  bool plain_peer = false;
  int64_t closed_ns = 0;  // when it became CLOSED (monotonic)
  LagStats lag;
  uint64_t lag_over_count = 0;      // records above DISKWIRE_MAX_LAG_MS
  int64_t next_lag_warning_ns = 0;  // rate limit of the warning

  // --- Counters for the heartbeat report (relaxed atomics: read by the
  // heartbeat). ---
  std::atomic<uint64_t> bytes_in_network{0};
  std::atomic<uint64_t> bytes_in_storage{0};
  std::atomic<uint64_t> kernel_acked{0};  // last tcpi_bytes_acked seen
  std::atomic<uint64_t> resumes{0};       // times back on the network
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SESSION_H_
