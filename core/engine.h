// File: core/engine.h
// The process's diskwire engine, as the shim sees it: every interposed call on
// a socket that the engine owns comes here, and the engine answers with what
// libc would have returned.
//
// One Engine per process, created on first use from the DISKWIRE_* environment.
// A process with no DISKWIRE_* variables has no engine (Get() returns nullptr)
// and the shim passes everything straight through. All methods are thread-safe.
// Methods taking an fd require Owns(fd), except the On*() notifications, which
// decide ownership.

#ifndef DISKWIRE_CORE_ENGINE_H_
#define DISKWIRE_CORE_ENGINE_H_

#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "core/sys_result.h"

namespace diskwire {

class OsCalls;

class Engine {
 public:
  // Size of the ownership table: fds at or above it are never selected (and are
  // reported once).
  static constexpr int kMaxFds = 1 << 16;

  virtual ~Engine() = default;

  // Returns the process's engine, creating it on the first call; nullptr when
  // diskwire is not configured, or when its configuration is invalid (one error
  // line naming the variable is printed to stderr, once). `os` must outlive the
  // process; the shim passes its real calls.
  static Engine* Get(OsCalls* os);

  // Is `fd` a selected socket of ours? Lock-free and O(1): the shim calls it on
  // every hook.
  bool Owns(int fd) const {
    return fd >= 0 && fd < kMaxFds &&
           owned_[fd].load(std::memory_order_acquire) != 0;
  }

  // Owned, but dormant in this process (a connection it inherited and has not
  // used): the data hooks call Claim() before handing the call over.
  bool Dormant(int fd) const {
    return fd >= 0 && fd < kMaxFds &&
           owned_[fd].load(std::memory_order_acquire) == kOwnedDormant;
  }
  // The process is about to send or receive on dormant `fd`: true when the
  // engine takes the session on (it is then no longer Dormant()); false when
  // this process cannot carry it (a sandboxed or chrooted child), and the fd
  // is no longer owned: the call goes straight to libc.
  virtual bool Claim(int fd) = 0;

  // --- Lifecycle: connect() is the engine's; the rest are notifications the
  // shim sends after the real call succeeded. ---

  // connect(fd, addr, len) on an IP TCP socket, made by the engine. An
  // unselected destination is a plain connect(). A selected one is adopted
  // when the connect succeeds or is under way (EINPROGRESS: the session
  // finishes its setup when the connection completes); when the network
  // cannot reach a destination that a live peer process listens on, the
  // connection opens over the volume instead (docs/ARCHITECTURE.md, "Opening
  // over storage"). Returns what connect() returns.
  virtual SysResult Connect(int fd, const sockaddr* addr, socklen_t len) = 0;
  // listen(fd) succeeded on a TCP socket, or the process inherited a
  // listening socket: a selected one is advertised in the heartbeat.
  virtual void OnListen(int fd) = 0;
  // accept()/accept4() returned `fd` on `listen_fd`. Selects by the local
  // address. A connection that a peer opened over the volume is recognised
  // here and carried in STORAGE; the shim then reports the peer address from
  // GetPeerName(), not the one the kernel gave.
  virtual void OnAccept(int listen_fd, int fd) = 0;
  // `fd` is a connected TCP socket this process got from the program that
  // exec'd it (a re-executing server such as sshd, inetd): adopted dormant
  // when selected (core/session.h).
  virtual void OnInherited(int fd) = 0;
  // dup/dup2/dup3/F_DUPFD made `newfd` another name for owned `oldfd`.
  virtual void OnDup(int oldfd, int newfd) = 0;
  // The shim is about to close `fd` (owned, or an epoll fd). Returns what
  // close() returns; the engine closes the fd itself and keeps the session's
  // other names working.
  virtual SysResult Close(int fd) = 0;

  // --- Data path, on the application's thread. `flags` are the caller's MSG_*
  // flags. ---

  // send/sendto/sendmsg/write/writev on an owned fd. Blocks as the socket would
  // (honouring O_NONBLOCK and MSG_DONTWAIT) and can be woken by a failover,
  // which it survives.
  virtual SysResult SendMsg(int fd, const msghdr* msg, int flags) = 0;
  // recvmsg on an owned fd; same blocking rules.
  virtual SysResult RecvMsg(int fd, msghdr* msg, int flags) = 0;
  // recv/recvfrom/read/readv on an owned fd: RecvMsg for a caller that does
  // not read msg->msg_flags back, which lets a one-buffer read reach the
  // kernel as the cheaper recvfrom(2) (core/message_calls.h).
  virtual SysResult Recv(int fd, msghdr* msg, int flags) = 0;
  virtual SysResult Shutdown(int fd, int how) = 0;

  // --- Socket introspection. After a swap the fd names a local socket pair,
  // yet the application still sees its TCP addresses, and TCP-level options
  // still succeed. ---
  virtual SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) = 0;
  virtual SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) = 0;
  virtual SysResult GetSockOpt(int fd, int level, int name, void* val,
                               socklen_t* len) = 0;
  virtual SysResult SetSockOpt(int fd, int level, int name, const void* val,
                               socklen_t len) = 0;

  // Is `fd` one the engine uses privately (its eventfds, epoll, the kept TCP
  // socket or socket pair end of a session)? The shim refuses to let
  // close/close_range/dup2 onto such an fd destroy it: close() of a private fd
  // returns EBADF, as it would had the fd not existed.
  bool IsPrivate(int fd) const {
    return fd >= 0 && fd < kMaxFds &&
           private_[fd].load(std::memory_order_acquire) != 0;
  }

  // --- UDP (core/datagram_relay.h): datagrams are never taken over; sends on
  // a candidate socket ask the engine which path they take. ---

  // Is `fd` an IP UDP socket the engine looks at? Lock-free and O(1).
  bool CarriesDatagrams(int fd) const {
    return fd >= 0 && fd < kMaxFds &&
           datagram_[fd].load(std::memory_order_acquire) != 0;
  }
  // socket() returned an IP UDP socket: a candidate when a UDP rule exists.
  virtual void OnDatagramSocket(int fd) = 0;
  // bind() or connect() succeeded on a candidate.
  virtual void OnDatagramAddressChange(int fd) = 0;
  // The candidate is being closed (close, close_range, dup2 onto it).
  virtual void OnDatagramClose(int fd) = 0;
  // send/sendto/sendmsg/write/writev on a candidate: nullopt when it goes
  // over the network (the shim then makes the application's own call), else
  // it was carried over the volume and this is what the call returns.
  // `refused` is the errno with which the network refused the real call (no
  // route, link down: the path is down at once), else 0.
  virtual std::optional<SysResult> CarryDatagram(int fd, const msghdr* msg,
                                                 int flags, int refused) = 0;

  // --- Waiting. ---

  // An eventfd that becomes readable whenever an owned fd changes the file it
  // names (a failover swap). The shim adds it to poll/select sets that contain
  // owned fds, and when it fires, consumes it with ConsumeWake() and retries
  // the wait.
  virtual int wake_fd() const = 0;
  virtual void ConsumeWake() = 0;
  // A wait reported an error or hang-up on owned `fd`. The engine looks at the
  // connection and, when the network path broke and the peer can take over,
  // moves the session to storage. Returns true when `fd` now names another
  // file: the shim waits again rather than show the application the old
  // socket's event (a spurious error or end of file).
  virtual bool CheckPath(int fd) = 0;
  // epoll_wait on `epfd` returned `n` events: the events of owned fds that
  // CheckPath() moved to storage are dropped (the array is compacted) and the
  // number that remain is returned.
  virtual int FilterEpollEvents(int epfd, epoll_event* events, int n) = 0;
  // Shadow registry of epoll_ctl on owned fds, so a swap can re-register them.
  virtual void OnEpollCtl(int epfd, int op, int fd,
                          const epoll_event* event) = 0;

  // --- fork(): called around the real fork by the shim's pthread_atfork
  // handlers. ---
  virtual void BeforeFork() = 0;
  virtual void AfterForkParent() = 0;
  virtual void AfterForkChild() = 0;

  // --- _exit(): the process leaves without running its atexit handlers, the
  // engine's drain among them. What TCP's kernel would still send for it (the
  // bytes of sessions on the volume, unacknowledged ones) goes now, as at
  // exit(). Not from a signal handler that interrupted the engine. ---
  virtual void BeforeExit() = 0;

 protected:
  static constexpr uint8_t kOwnedDormant = 2;  // owned_: 0 no, 1 yes
  std::atomic<uint8_t> owned_[kMaxFds] = {};
  std::atomic<uint8_t> private_[kMaxFds] = {};
  std::atomic<uint8_t> datagram_[kMaxFds] = {};
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_ENGINE_H_
