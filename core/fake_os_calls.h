// File: core/fake_os_calls.h
// An OsCalls for core/'s tests (testonly) that a test scripts: by default
// every call goes to libc (nothing is preloaded in a unit test, so libc's
// symbols are the real calls), and a test makes chosen calls fail or a
// connection stall, the way a network does:
//
//   FakeOsCalls os;
//   os.FailOn(FakeOsCalls::Call::kSendMsg, fd, ECONNRESET);  // a reset
//   os.Stall(fd);  // no ACK ever comes back for what fd sent
//
// Thread-safe: the engine's threads call it while the test scripts it.

#ifndef DISKWIRE_CORE_FAKE_OS_CALLS_H_
#define DISKWIRE_CORE_FAKE_OS_CALLS_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/os_calls.h"

namespace diskwire {

class FakeOsCalls final : public OsCalls {
 public:
  // The calls a test can make fail (and count; a poll counts on its first fd).
  // kSendMsg is any send on a socket, sendmsg or sendto, and kRecvMsg any
  // receive; kSendTo and kRecvFrom count (and fail) only those made as
  // sendto and recvfrom, after kSendMsg's and kRecvMsg's rules.
  enum class Call {
    kSendMsg,
    kRecvMsg,
    kSendTo,
    kRecvFrom,
    kConnect,
    kRead,
    kWrite,
    kPoll
  };
  static constexpr int kAnyFd = -1;

  // REQUIRES: clock outlives this (it times stalls).
  explicit FakeOsCalls(const Clock* clock = RealClock::Get()) : clock_(clock) {}

  // The next `times` calls of `call` on `fd` (kAnyFd: any) fail with
  // `error`, without reaching the kernel; times < 0: every one from now on.
  void FailOn(Call call, int fd, int error, int times = -1);
  // From now on, the TCP socket `fd` looks like a connection whose peer
  // went silent: TCP_INFO says no ACK came since this call, and SIOCOUTQ
  // shows at least one byte waiting for one. The bytes themselves still
  // flow (the failover must cope with a peer that has more than the
  // counters say). `silent_for`: as if the last ACK came that long before.
  void Stall(int fd, int64_t silent_for_ns = 0);
  // Forgets every rule and stall.
  void Clear();
  // How many times `call` was made on `fd` (kAnyFd: on any), failed or not.
  int Count(Call call, int fd = kAnyFd) const;

  SysResult SocketPair(int domain, int type, int protocol, int fds[2]) override;
  SysResult Socket(int domain, int type, int protocol) override;
  SysResult Bind(int fd, const sockaddr* addr, socklen_t len) override;
  SysResult Listen(int fd, int backlog) override;
  SysResult Connect(int fd, const sockaddr* addr, socklen_t len) override;
  SysResult Accept4(int fd, sockaddr* addr, socklen_t* len, int flags) override;
  SysResult Close(int fd) override;
  SysResult Dup3(int oldfd, int newfd, int flags) override;
  SysResult Fcntl(int fd, int cmd, int arg) override;
  SysResult Ioctl(int fd, unsigned long request, int* arg) override;
  SysResult SendMsg(int fd, const msghdr* msg, int flags) override;
  SysResult RecvMsg(int fd, msghdr* msg, int flags) override;
  SysResult SendTo(int fd, const void* buf, size_t len, int flags,
                   const sockaddr* to, socklen_t to_len) override;
  SysResult RecvFrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                     socklen_t* from_len) override;
  SysResult Read(int fd, void* buf, size_t len) override;
  SysResult Write(int fd, const void* buf, size_t len) override;
  SysResult Shutdown(int fd, int how) override;
  SysResult GetSockOpt(int fd, int level, int name, void* val,
                       socklen_t* len) override;
  SysResult SetSockOpt(int fd, int level, int name, const void* val,
                       socklen_t len) override;
  SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) override;
  SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) override;
  SysResult Poll(pollfd* fds, nfds_t nfds, int timeout_ms) override;
  SysResult EpollCreate1(int flags) override;
  SysResult EpollCtl(int epfd, int op, int fd, epoll_event* event) override;
  SysResult EpollWait(int epfd, epoll_event* events, int maxevents,
                      int timeout_ms) override;
  SysResult EventFd(unsigned int initval, int flags) override;

 private:
  struct Rule {
    Call call;
    int fd;
    int error;
    int remaining;  // < 0: for ever
  };
  // Counts the call; the errno a rule scripts for it, or 0.
  int Scripted(Call call, int fd);

  const Clock* const clock_;
  mutable absl::Mutex mu_;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);
  std::map<int, int64_t> stalled_since_ns_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<Call, int>, int> counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_FAKE_OS_CALLS_H_
