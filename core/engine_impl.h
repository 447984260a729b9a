// File: core/engine_impl.h
// The engine behind core/engine.h: the healthy data path on the
// application's threads, the failover (swap and announcement), and the engine
// loop that carries sessions in STORAGE over the volume. Its parts that are
// objects of their own: SessionTable (core/session_table.h: which fd names
// which session), StoragePath (core/storage_path.h: pumping a session in
// STORAGE, over its StorageLeg), PeerDirectory (core/peer_directory.h: the
// other processes' heartbeats), FailureDetector (core/failure_detector.h),
// Writer (core/writer.h). The engine's own methods, by file: engine_impl.cc
// (creation, adoption), engine_fds.cc (dup, close, epoll), engine_fork.cc
// (fork), data_path.cc (the application's calls), direct_checks.cc (probing
// DIRECT sessions), failover.cc (the decision, announcement), swap.cc (the
// swap), engine_loop.cc (the loop thread), heartbeats.cc (this process's
// heartbeat, and the peers'), inbox.cc (announcements and requests from
// peers), resume*.cc (back to the network), open_over_storage.cc,
// accept_over_storage.cc and connect_takeover.cc (connections opened while
// the network is down),
// exit_drain.cc (exit).
//
// Thread safety: all public methods are thread-safe. The session table
// (core/session_table.h) has its own lock, `table_.mu`; each Session has its
// own locks (core/session.h). Lock order: table_.mu before Session::mu;
// Session::send_mu before Session::mu.

#ifndef DISKWIRE_CORE_ENGINE_IMPL_H_
#define DISKWIRE_CORE_ENGINE_IMPL_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/datagram_relay.h"
#include "core/engine.h"
#include "core/failover_message.h"
#include "core/host_identity.h"
#include "core/listeners.h"
#include "core/log.h"
#include "core/os_calls.h"
#include "core/peer_directory.h"
#include "core/private_fd_marks.h"
#include "core/resume_handshake.h"
#include "core/session.h"
#include "core/session_table.h"
#include "core/storage_path.h"
#include "core/tcp_probe.h"
#include "core/writer.h"
#include "storage/volume.h"

namespace diskwire {

class EngineImpl final : public Engine, private StoragePath::Host {
 public:
  // Opens the volumes and starts nothing yet: threads start with the first
  // selected socket.
  static absl::StatusOr<std::unique_ptr<EngineImpl>> Create(
      const Config& config, OsCalls* os, const Clock* clock);
  ~EngineImpl() override;

  SysResult Connect(int fd, const sockaddr* addr, socklen_t len) override;
  void OnListen(int fd) override;
  void OnDatagramSocket(int fd) override;
  void OnDatagramAddressChange(int fd) override;
  void OnDatagramClose(int fd) override;
  std::optional<SysResult> CarryDatagram(int fd, const msghdr* msg, int flags,
                                         int refused) override;
  void OnAccept(int listen_fd, int fd) override;
  void OnInherited(int fd) override;
  bool Claim(int fd) override;
  void OnDup(int oldfd, int newfd) override;
  SysResult Close(int fd) override;
  SysResult SendMsg(int fd, const msghdr* msg, int flags) override;
  SysResult RecvMsg(int fd, msghdr* msg, int flags) override;
  SysResult Recv(int fd, msghdr* msg, int flags) override;
  SysResult Shutdown(int fd, int how) override;
  SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) override;
  SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) override;
  SysResult GetSockOpt(int fd, int level, int name, void* val,
                       socklen_t* len) override;
  SysResult SetSockOpt(int fd, int level, int name, const void* val,
                       socklen_t len) override;
  int wake_fd() const override { return wake_fd_; }
  void ConsumeWake() override;
  bool CheckPath(int fd) override;
  int FilterEpollEvents(int epfd, epoll_event* events, int n) override;
  void OnEpollCtl(int epfd, int op, int fd, const epoll_event* event) override;
  // table_.mu (and the relay's lock) is taken in BeforeFork and released in the
  // After* handler of each side: across two functions, which the analysis
  // cannot follow.
  void BeforeFork() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkParent() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void AfterForkChild() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void BeforeExit() override { DrainAtExit(); }

  const std::string& process_id() const { return process_id_; }
  // The session an fd names, for tests; nullptr when none.
  Session* SessionFor(int fd) const;
  // As if the process were killed: the threads stop and nothing more is
  // written; the heartbeat file stays behind and goes stale. For tests of peer
  // death.
  void StopWithoutDrain();
  // Forces a failover as if the detector had fired (tests and `diskwire`
  // tooling).
  bool FailOver(int fd, const std::string& reason);
  // For tests of a resume that breaks half-way: when `stall` returns true for
  // a link of this side in that phase, the engine stops reading the link, as
  // if the network had died under it, until the attempt times out. Set before
  // the first connection.
  using LinkFault = std::function<bool(Role role, ResumeLink::Phase phase)>;
  void SetLinkFaultForTest(LinkFault stall) { link_fault_ = std::move(stall); }
  // The engine-wide lock (the session table's), for a test that holds it to
  // show that the healthy send and receive path never takes it.
  absl::Mutex* TableLockForTest() ABSL_LOCK_RETURNED(table_.mu) {
    return &table_.mu;
  }

 private:
  EngineImpl(const Config& config, OsCalls* os, const Clock* clock);

  // --- engine_impl.cc ---
  // `inherited`: another process holds the connection too (a fork, an exec):
  // the session starts dormant.
  void Adopt(int fd, Role role, const sockaddr* remote_hint, socklen_t hint_len,
             bool inherited = false);
  // A dormant session's first send or receive in this process: it claims the
  // session, and the ring restarts at what the socket has carried.
  // False when this process cannot carry it (the volume is out of its
  // reach): it stays dormant and its calls pass straight through.
  bool Activate(Session* s, int fd);
  // Which end of an inherited connection this process is, from the selection
  // and the ephemeral port range (no accept or connect was seen).
  std::optional<Role> InferRole(int fd);
  // Goes dormant where another process claimed a shared session later.
  void YieldToNewerClaims(const PeerSnapshot& peers);
  // Removes this process's channels of released sessions whose peer process
  // no longer lists the session (it read them to the end, or it died).
  void RemoveRetired(const PeerSnapshot& peers);
  // Completes a session adopted during a non-blocking connect; false while
  // still connecting.
  bool FinishAdoption(Session* s, int fd);
  // This process will never carry `s` (it cannot reach the volume): its fds
  // are no longer owned, and it is forgotten.
  void Disown(Session* s);
  // Waits while the session `fd` names is being swapped.
  void WaitForStableNames(int fd);
  bool IsNonBlocking(int fd, int flags) const;
  // Did the application ask for an abortive close (SO_LINGER {1, 0})?
  // REQUIRES: s->mu held.
  static bool AbortsOnClose(const Session& s);
  // Takes s->mu (after send_mu, the sessions' lock order).
  void TrimByKernelAck(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu)
      ABSL_LOCKS_EXCLUDED(s->mu);
  // Records that the TCP socket `fd` took the first `sent` bytes of `iov`:
  // sent_to_socket moves on and the ring keeps them, but for those the peer's
  // kernel already acknowledged, which it asks every kEagerTrimBytes.
  void KeepSent(Session* s, int fd, const iovec* iov, size_t iovcnt,
                size_t sent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu);
  // Writes the ring from sent_to_socket to head() on the TCP socket `fd`
  // without blocking, then the FIN when one is owed. Returns the first error
  // (EAGAIN when the socket is full).
  SysResult FlushBacklog(Session* s, int fd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu);
  // How a receive reaches the kernel: recvmsg(2) for a caller that reads
  // msg_flags back (recvmsg, recvmmsg), ReceiveMessage (core/message_calls.h)
  // for one that does not.
  enum class RecvCall { kRecvMsg, kWithoutFlags };
  // One non-blocking send of what is left of `msg` (its first `done` of
  // `want` bytes went already) on the TCP socket, under send_mu.
  struct DirectAttempt {
    SysResult result;  // the socket's answer, or why nothing was sent
    size_t done;       // bytes of the message sent, this attempt's included
    uint32_t generation = 0;  // the session's, at the attempt
    bool moved = false;       // the session was not DIRECT: nothing was tried
    bool ring_cut = false;    // the ring's room, not the socket, cut it short
  };
  DirectAttempt AttemptDirect(Session* s, int fd, const msghdr& msg, int flags,
                              size_t want, size_t done)
      ABSL_LOCKS_EXCLUDED(s->send_mu);
  // Goes on from attempt `a` until every byte of `msg` is sent (waiting for
  // room as a blocking send does), the socket fails, or the session leaves
  // DIRECT (*retry, with the bytes sent).
  SysResult SendDirect(Session* s, int fd, const msghdr* msg, int flags,
                       DirectAttempt a, bool* retry);
  // SendMsg past its first attempt, or when the session is not DIRECT: on
  // through every state change until the call is done. `first`: the attempt
  // SendMsg made, if it made one.
  SysResult SendAcrossStates(Session* s, int fd, const msghdr* msg, int flags,
                             const DirectAttempt* first);
  SysResult SendStorage(Session* s, int fd, const msghdr* msg, int flags,
                        bool* retry);
  // Receives on the TCP socket `fd` with the application's own flags, so that
  // a wait is the kernel's (one call, its SO_RCVTIMEO); a swap wakes a read
  // blocked there (WaitOutTcpReaders). `*received`: bytes an earlier call
  // already placed in msg's buffers (a MSG_WAITALL read that a swap
  // interrupted goes on after them), updated; `into`: msg past them (msg
  // itself when there are none). *retry when the state changed before the
  // call was done: nothing read yet, or a MSG_WAITALL buffer not full.
  // `call`: how the kernel is asked (RecvCall).
  SysResult RecvDirect(Session* s, int fd, msghdr* msg, msghdr* into, int flags,
                       RecvCall call, size_t* received, bool* retry);
  // As RecvDirect on the socket pair, never blocking inside it (so that a
  // resume can always take it): waits are polls a resume interrupts.
  SysResult RecvStorage(Session* s, int fd, msghdr* msg, int flags,
                        RecvCall call, size_t* received, bool* retry);
  // RecvMsg and Recv.
  SysResult Receive(int fd, msghdr* msg, int flags, RecvCall call);
  // Receive past its first attempt on the TCP socket (`received` bytes
  // placed), or when the session is not DIRECT: on through every state
  // change until the call is done.
  SysResult ReceiveAcrossStates(Session* s, int fd, msghdr* msg, int flags,
                                RecvCall call, size_t received);
  // One receive from the kernel, as `call` says.
  SysResult RecvOnce(int fd, msghdr* msg, int flags, RecvCall call);
  static bool IsSwapping(SessionState st) {
    return st == SessionState::kFailingOver || st == SessionState::kResuming;
  }
  void WaitWhileSwapping(Session* s);
  // Waits until `fd` is ready for `events`, the session leaves state `in` or
  // generation `generation`, or `*deadline` passes (then EAGAIN), in slices
  // short enough to notice a swap. A call's first wait (`*deadline` still
  // InfinitePast) sets it from the socket's SO_SNDTIMEO (POLLOUT) or
  // SO_RCVTIMEO, or to never, as the kernel times a blocking call. A signal
  // handler ends it with EINTR as it ends the kernel's call: when the call
  // `moved` bytes already, or unless the call would restart.
  SysResult WaitReady(int fd, short events, Session* s, uint32_t generation,
                      SessionState in, absl::Time* deadline, bool moved);

  // --- failover.cc ---
  // Moves a DIRECT session to STORAGE. `peer_process` is known when the peer
  // announced first. Returns false when the session cannot fail over (no live
  // peer holds it): the caller passes the socket's error to the application.
  // `episode` is the one the peer announced (0 when this side decides).
  // `cause`: what the announcement says when the path did not fail
  // (FailoverMessage::cause).
  bool TriggerFailover(Session* s, const std::string& reason,
                       std::string peer_process, uint32_t episode = 0,
                       const char* cause = "");
  // This side's and the peer's channel in the session's current episode.
  std::string MyChannel(const Session& s) const;
  std::string PeerChannel(const Session& s) const;
  // The live process that holds the other end of `s`, from the heartbeats
  // as read now; "" when none does (logged when `report`).
  // *claim_ns, when given, gets that process's claim of the session.
  // `closed_too`: a process whose end is closed already counts (for a
  // session on the volume: its channel holds its last records).
  std::string FindPeerProcess(const Session& s, bool report = true,
                              int64_t* claim_ns = nullptr,
                              bool closed_too = false);
  // The same, from heartbeats already read.
  std::string PeerHolding(const PeerSnapshot& peers, const Session& s,
                          bool report, int64_t* claim_ns, bool closed_too);
  // Is the peer's process and claim known, which name its channel?
  static bool PeerKnown(const Session& s);
  // Opens (and watches) the peer's channel of a session in STORAGE whose
  // peer has just become known. Loop thread.
  void OpenPeerReader(Session* s);
  // How long after its start a session may wait for its peer's heartbeat
  // to name it, when it fails before that.
  static constexpr int64_t kYoungSessionNs = 500'000'000;
  // For a session younger than that: sleeps a little (true), so that the
  // caller looks for the peer again. False once it is older.
  bool YoungSessionWait(const Session& s);
  // No diskwire peer holds `s`: its socket gets its own timeouts back.
  void UsePlainTcpTimeouts(Session* s);
  // This side's channel of the session's episode, emptied and opened.
  absl::StatusOr<std::unique_ptr<storage::ChannelWriter>> OpenMyChannel(
      const Session& s);
  // Sets up the volume leg from the failover offset and what the application
  // was delivered, on `channel` (nullptr: opened here).
  absl::Status StartStoragePath(
      Session* s, uint64_t failover_offset, uint64_t delivered,
      std::unique_ptr<storage::ChannelWriter> channel = nullptr);
  void Announce(Session* s);
  void EndSession(Session* s, int error, const std::string& why) override;

  // --- swap.cc ---
  // Moves the application's fd from the TCP socket to a socket pair and sets
  // up the storage path. Fails, leaving everything as it was, until the point
  // of no return; Aborted past it (the session cannot go back to TCP).
  absl::Status Swap(Session* s);
  // Waits until no application thread is inside a receive on the session's
  // TCP socket `fd` (RecvDirect), so that what they read is in the sample
  // the swap takes next. One still there after a moment waits for bytes in
  // the kernel: shutting the socket's read side wakes it (nothing goes on the
  // wire; bytes already queued stay readable, and the loop drains them).
  // REQUIRES: state is not DIRECT (no reader enters after it is read).
  void WaitOutTcpReaders(Session* s, int fd);
  // dup3s one end of a new socket pair over each of `names`, keeping epoll
  // registrations.
  absl::Status InstallSocketPair(Session* s, const std::vector<int>& names);
  // The two halves of InstallSocketPair: making the pair can fail, putting it
  // in place cannot.
  absl::Status MakeSocketPair(int pair[2]);
  // SO_RCVTIMEO and SO_SNDTIMEO of the file `from` onto the file `to`, which
  // takes its place under the application's fd: a blocking call keeps the
  // timeout the application gave it (the waits honour it, WaitReady).
  void CopyTimeouts(int from, int to);
  void PutSocketPair(Session* s, const std::vector<int>& names,
                     const int pair[2]);
  // Replaces the file behind every name of the session with `fd`'s, keeping
  // epoll registrations (removed while the name still means the old file) and
  // each name's FD_CLOEXEC. REQUIRES: the session's hooks are kept out.
  void ReplaceFile(Session* s, const std::vector<int>& names, int fd);

  // --- resume.cc: back to the network (docs/ARCHITECTURE.md, "Resume") ---
  static constexpr int64_t kResumeDialIntervalMs = 100;
  static constexpr int64_t kAttemptMs = 1000;  // a handshake, connect included
  static constexpr int64_t kRetryMs = 500;  // between attempts of one session
  struct PeerInfo {
    uint16_t resume_port = 0;
    std::string nonce;
  };
  void StartResumeListener();
  // A non-blocking listening socket on `port` of every address of `family`;
  // -1 with *error set when it cannot be had.
  int ListenOn(int family, uint16_t port, std::string* error);
  void AcceptResumeLinks(int listener);
  // Reads the hello of an accepted resume connection and hands it to its
  // session (or closes it: not a diskwire engine, not authentic, no such
  // session).
  void ReadPendingLink(Session::LoopTag* tag);
  // Drops `p` (and its loop tag) from pending_links_; its fd is the caller's.
  void ForgetPendingLink(PendingResumeLink* p);
  void DialResumes();
  void OnLinkEvent(Session* s);
  // Reads the rest of the message being received on the link; true when one
  // is complete in s->link->in.
  bool ReadLinkMessage(Session* s, bool* failed);
  bool SendLinkMessage(Session* s, const ResumeMessage& m);
  // Writes `bytes` to the socket `fd` without blocking and without SIGPIPE;
  // returns how many went.
  size_t SendAllNoSignal(int fd, absl::string_view bytes);
  // Keeps the hooks out (RESUMING), takes back what the application has not
  // read from the pair and reads what it wrote into the ring. False (and
  // nothing changed) when the session cannot resume now.
  bool Freeze(Session* s);
  void Unfreeze(Session* s);
  void CommitResume(Session* s, uint64_t peer_delivered);
  // Gives the attempt up. `peer_may_have_committed`: the peer may already
  // be back on the link, so the session moves to a new episode with the link
  // as an old socket to drain, and tells the peer.
  void AbandonResume(Session* s, const std::string& why,
                     bool peer_may_have_committed);
  // Moves a session in STORAGE to a new failover episode: fresh channels,
  // everything the ring holds written again.
  void ReFailover(Session* s, uint32_t episode, const std::string& why);
  // Closes the session's storage-side descriptors and drops its writer
  // queue, watch, reader and reassembly; with `remove_channel`, its channel
  // on the volume too (after a resume nobody reads it again).
  void ReleaseStorageState(Session* s, bool remove_channel);
  // Lets go of sessions that ended a while ago and that no fd names.
  void ReleaseEndedSessions();
  void ExpireResumes();
  bool CanResume(Session* s);
  std::optional<PeerInfo> PeerInfoFor(const std::string& process);

  // --- open_over_storage.cc, connect_takeover.cc: connections opened while
  // the network is down (docs/ARCHITECTURE.md, "Opening over storage") ---
  struct OpenTarget {
    std::string process;  // the peer process that advertises the listener
    bool alive = false;   // its heartbeat changed within the peer timeout
  };
  // A connection this process queued on its own listener for a peer's
  // request, until the application accepts it (or the listener goes away).
  struct OpenDial {
    int fd;
    FailoverMessage request;
  };
  // connect() on a socket that already has session `s`: the kernel's answer,
  // or the connection over the volume's when it has one (or it opens now).
  SysResult ConnectAgain(Session* s, int fd, const sockaddr* addr,
                         socklen_t len);
  // Waits for a blocking connect() made non-blocking, up to SO_SNDTIMEO;
  // returns connect()'s errno (0, EINPROGRESS when SO_SNDTIMEO ran out,
  // ETIMEDOUT with *blackholed when the SYN got no answer within the
  // detection bound and a live peer listens at `dest`).
  int AwaitConnect(int fd, const sockaddr_storage& dest, bool* blackholed);
  // The peer process whose heartbeat advertises a listener that a connection
  // to `dest` would reach: a live one first. None when nobody advertises one.
  std::optional<OpenTarget> FindListener(const sockaddr_storage& dest);
  bool ListenerAlive(const sockaddr_storage& dest);
  // A session that begins on the volume, FAILING_OVER until the caller's
  // swap; its id from the endpoints (InvalidArgument when they make none).
  absl::StatusOr<std::shared_ptr<Session>> NewOpenedSession(
      Role role, const sockaddr_storage& local, const sockaddr_storage& remote,
      const std::string& peer_process, int64_t peer_claim_ns);
  // Makes `fd` its name and the session the engine's.
  void RegisterOpened(const std::shared_ptr<Session>& s, int fd);
  // An address of this host of `dest`'s family, for a socket never bound.
  bool ChooseLocalAddress(const sockaddr_storage& dest,
                          sockaddr_storage* local);
  // Opens the connection `fd` could not make over the volume: what connect()
  // returns then, or nullopt when no live peer listens at `dest` (the caller
  // returns `tcp_error`, as TCP would).
  std::optional<SysResult> OpenOverStorage(int fd, const sockaddr_storage& dest,
                                           bool nonblocking, int tcp_error);
  // Keeps the application's end of the pair unwritable while a non-blocking
  // connect waits for its answer, as a connecting socket is; and lets go.
  void HoldUnwritable(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu);
  void ReleaseHold(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu);
  // The listener's process answered: the connect() completes, or fails.
  void CompleteOpen(Session* s, const FailoverMessage& answer);
  void FailOpen(Session* s, int error, const std::string& why);
  void PostOpenAnswer(const FailoverMessage& request, const char* answer);
  // A peer asks to open a connection to a listener of this process.
  void HandleOpenRequest(const FailoverMessage& m);
  void HandleOpenAnswer(const FailoverMessage& m);
  // Closes the dials whose connection the application accepted, and resets
  // those its listener will never accept.
  void CheckOpenDials();
  // accept() returned one of our dials: carries it in STORAGE (true), or
  // false when `fd` is an ordinary connection.
  bool AcceptOverStorage(int fd);
  // Times out opening connections, and opens over the volume a non-blocking
  // connect whose SYN went unanswered for the detection bound, or that failed.
  void CheckOpening();
  // Opens over the volume the non-blocking connect under way on `s` when a
  // live peer advertises its listener and its socket failed as a broken
  // network fails it (refused by a reset, unreachable, the error not read
  // yet) or, with `unanswered_too`, its SYN is still unanswered. True when
  // the application's fd now names something else than the socket it waited
  // on (the connection over the volume), by this call or by another
  // thread's, which it waits out. `error_read`: the socket's error, when the
  // application's own call has already read it from the kernel.
  bool TakeOverConnecting(Session* s, bool unanswered_too, int error_read = 0);

  // --- direct_checks.cc: probing DIRECT sessions, lingering closes ---
  // Probes each DIRECT session (every DETECT_MS/25) and fails over those whose
  // path failed.
  void CheckDirectSessions();
  // A closed DIRECT session whose bytes and FIN the peer kernel now holds is
  // let go (true).
  bool FinishLinger(Session* s);

  // --- inbox.cc: what other processes ask of this one ---
  void HandleInbox();
  // Writes a reset into this side's channel of a session the peer announced
  // and this process does not have.
  void AnswerUnknownSession(const FailoverMessage& m);

  // --- engine_loop.cc ---
  // Opens the volumes on the first selected socket: a process that selects
  // nothing never touches the volume. Thread-safe; the first error is kept and
  // returned again.
  absl::Status OpenVolumesOnce();
  void StartThreadsOnce();
  // When the network last brought anything of `s` (an ACK or data), from its
  // TCP socket's counters; `now` when they cannot tell.
  int64_t LastArrivalNs(Session* s, int64_t now);
  // Starts the UDP relay (with the volumes and threads it needs); false when
  // it cannot run.
  bool StartRelayOnce();
  // Stops the loop and, on the calling thread, writes what sessions in STORAGE
  // still hold: the bytes left in their socket pairs and a FIN for each (the
  // process is going away, as TCP's kernel would keep sending after it). Runs
  // at exit(), at _exit() and in the destructor; idempotent.
  void DrainAtExit();
  static void DrainAtExitHook();
  // Adds this engine to those the exit hook drains (exit_drain.cc).
  void RegisterExitDrain();
  // At exit, a session in STORAGE: everything the application wrote goes to
  // the writer (its pair, its ring), then the FIN; bounded by kExitFlushNs.
  void SubmitAllAtExit(Session* s);
  static constexpr int64_t kExitFlushNs = 30'000'000'000;
  void FailOverUnacknowledgedAtExit();
  void LoopMain();
  void LoopAdd(int fd, Session* s, uint32_t events);
  // StoragePath::Host: what the storage path asks of the engine.
  void LoopMod(int fd, Session* s, uint32_t events) override;
  void LoopDel(int fd) override;
  void ReleasePrivate(int fd) override;
  void ForgetPeerChannel(Session* s) override;
  // The application closed a session in STORAGE abortively: a reset record
  // instead of the FIN, and the session ends.
  void AbortOverStorage(Session* s);
  // Per wake: the storage sessions' channels that changed (`changes`, null
  // when the watcher was not drained), the writer side, the periodic work.
  void Tick(const storage::VolumeWatcher::Changes* changes);
  // Says once when appends of the session's records start failing (a full
  // or failing volume) and once when they go through again.
  void NoteVolumeWrites(Session* s);
  void CheckPeers();
  void PublishHeartbeat();
  // Has the loop publish a heartbeat taken after snapshot `taken` (a value
  // of heartbeat_snapshots_), and waits until it is on the volume, at most
  // kPublishWaitMs. Not from the loop thread.
  void AwaitHeartbeatAfter(uint64_t taken);
  static constexpr int64_t kPublishWaitMs = 200;
  // Warns (once per other host) when another host's processes use this
  // node's name: heartbeats, channels and inboxes would be mixed up.
  void CheckNodeName(const PeerSnapshot& peers);
  // Reclaims heartbeats, inboxes and channels of processes long dead
  // (core/volume_prune.h).
  void PruneDeadProcesses();

  const Config config_;
  OsCalls* const os_;
  const Clock* const clock_;
  // Cap each selected socket's send buffer below the ring (TcpProbe::
  // LimitSendBuffer): only when the kernel's autotuning could queue more than
  // a ring holds. Set once at creation.
  bool limit_send_buffer_ = true;
  TcpProbe probe_;
  Logger log_;
  // Pumps the sessions in STORAGE (core/storage_path.h); the loop's.
  StoragePath storage_path_;
  // Marks the fds the volumes and the relay hold as private. Declared before
  // them: they tell it of their fds' closing as they go.
  PrivateFdMarks fd_marks_{private_, kMaxFds};
  std::unique_ptr<storage::Volume> send_volume_;
  std::unique_ptr<storage::Volume>
      recv_volume_;  // null when it is the send volume
  // The volumes once open (empty before): what fork() must tell.
  std::vector<storage::Volume*> OpenVolumes() const;
  // The peer directory once the volumes are open (null before): fork() locks
  // it.
  PeerDirectory* Peers() const;
  // In a child of fork(): closes its copies of the engine's private fds and
  // drops what referred to them (engine_fork.cc).
  void ForgetParentsFds() ABSL_EXCLUSIVE_LOCKS_REQUIRED(table_.mu);
  storage::Volume* recv() const {
    return recv_volume_ ? recv_volume_.get() : send_volume_.get();
  }
  std::string process_id_;
  // What the heartbeats on the receive volume say of the other processes;
  // made with the volumes.
  std::unique_ptr<PeerDirectory> peers_;

  int wake_fd_ = -1;  // eventfd for the shim's wait wrappers
  int loop_fd_ = -1;  // the loop's epoll
  int kick_fd_ = -1;  // eventfd that wakes the loop
  std::unique_ptr<storage::VolumeWatcher> watcher_;
  std::unique_ptr<Writer>
      writer_;  // the process's writer thread (claims 1, 2, 9)
  std::thread loop_thread_;
  std::atomic<bool> started_{false};
  std::atomic<bool> volumes_open_{false};
  absl::Status volumes_status_;  // guarded by start_mu_
  std::atomic<bool> stopping_{false};
  absl::Mutex start_mu_;

  // Which fds name which sessions; its lock also guards the fields below
  // that change with the table (ABSL_GUARDED_BY(table_.mu)) and the few
  // scalars the loop and the hooks share (next_heartbeat_ns_, process_id_).
  SessionTable table_{owned_};
  // Sessions that just moved to storage, for the loop to add to its epoll.
  std::vector<std::shared_ptr<Session>> to_register_ ABSL_GUARDED_BY(table_.mu);
  // Failover announcements for sessions this process does not (yet) know, with
  // when they came.
  std::vector<std::pair<FailoverMessage, int64_t>> unmatched_;
  std::vector<OpenDial> open_dials_;  // loop thread only
  // Records and messages read from the volume and rejected (checksum, MAC,
  // foreign or misplaced), for the heartbeat and `diskwire status`.
  std::atomic<uint64_t> rejected_records_{0};
  int64_t next_heartbeat_ns_ = 0;
  int64_t next_name_check_ns_ = 0;
  static constexpr int64_t kPruneIntervalNs = 60'000'000'000;
  // malloc_trim after sessions ended, at most this often
  // (ReleaseEndedSessions).
  static constexpr int64_t kTrimIntervalNs = 2'000'000'000;
  int64_t next_trim_ns_ = 0;
  bool trim_owed_ = false;
  int64_t next_prune_ns_ = 0;
  // Channels of released sessions, kept while the peer may still read them.
  struct Retired {
    std::string channel;
    SessionId session;
    Role peer_role;
    std::string peer_process;
  };
  std::vector<Retired> retired_;
  HostIdentity host_;        // read when the threads start
  ListenerTable listeners_;  // selected listening sockets (advertised)
  std::set<std::string> name_clashes_;  // other hosts' keys, warned about
  int64_t next_direct_check_ns_ = 0;
  // How often a direct session with nothing unacknowledged is sampled.
  static constexpr int64_t kQuietSampleNs = 250'000'000;
  int64_t next_dump_ns_ = 0;

  // Resume: this process's nonce (in its heartbeat), its listener, the
  // connections accepted on it that have not said hello, and what peers'
  // heartbeats say of theirs.
  std::string resume_nonce_;
  LinkFault link_fault_;
  std::vector<int> resume_listeners_;  // IPv4, and IPv6 where there is one
  uint16_t resume_port_ = 0;
  // Accepted resume connections before their hello, each with its loop tag.
  std::vector<std::pair<std::unique_ptr<PendingResumeLink>,
                        std::unique_ptr<Session::LoopTag>>>
      pending_links_;
  int64_t next_resume_dial_ns_ = 0;
  // Every storage session's channel is read at least this often (Tick), in
  // case a change went unnoticed.
  static constexpr int64_t kReadSweepNs = 250'000'000;
  int64_t next_read_sweep_ns_ = 0;

  // The UDP relay, when a rule selects UDP (null otherwise). Declared last:
  // its thread stops before the volumes it uses close.
  std::unique_ptr<DatagramRelay> relay_;
  std::atomic<bool> relay_started_{false};
  // The relay wants the heartbeat published soon (a new receiver).
  std::atomic<bool> heartbeat_due_{false};
  // Which of the heartbeat's views of the table is on the volume: counted
  // when PublishHeartbeat takes one (under table_.mu), and when it was written.
  uint64_t heartbeat_snapshots_ ABSL_GUARDED_BY(table_.mu) = 0;
  absl::Mutex published_mu_;
  uint64_t heartbeat_published_ ABSL_GUARDED_BY(published_mu_) = 0;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_ENGINE_IMPL_H_
