// File: core/os_calls.h
// The operating-system calls core/ makes on sockets and descriptors. core/
// never names a libc symbol: the shim implements this interface with the real
// libc functions (resolved past the preload); core/'s tests use FakeOsCalls
// (core/fake_os_calls.h), which calls libc unless a test scripts a failure.
//
// Every method returns the call's value and errno together (see SysResult) and
// never touches the caller's errno. Implementations are thread-safe and retry
// nothing: EINTR is returned as is.

#ifndef DISKWIRE_CORE_OS_CALLS_H_
#define DISKWIRE_CORE_OS_CALLS_H_

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/sys_result.h"

namespace diskwire {

class OsCalls {
 public:
  virtual ~OsCalls() = default;

  /** @see man 2 socketpair */
  virtual SysResult SocketPair(int domain, int type, int protocol,
                               int fds[2]) = 0;
  /** @see man 2 socket */
  virtual SysResult Socket(int domain, int type, int protocol) = 0;
  /** @see man 2 bind */
  virtual SysResult Bind(int fd, const sockaddr* addr, socklen_t len) = 0;
  /** @see man 2 listen */
  virtual SysResult Listen(int fd, int backlog) = 0;
  /** @see man 2 connect */
  virtual SysResult Connect(int fd, const sockaddr* addr, socklen_t len) = 0;
  /** @see man 2 accept4 */
  virtual SysResult Accept4(int fd, sockaddr* addr, socklen_t* len,
                            int flags) = 0;
  /** @see man 2 close */
  virtual SysResult Close(int fd) = 0;
  /** @see man 2 dup3 (flags: 0 or O_CLOEXEC) */
  virtual SysResult Dup3(int oldfd, int newfd, int flags) = 0;
  /** @see man 2 fcntl, for commands whose argument is an int (F_GETFL, F_SETFL,
   * F_DUPFD...) */
  virtual SysResult Fcntl(int fd, int cmd, int arg) = 0;
  /** @see man 2 ioctl, for requests whose argument is an int* (FIONREAD,
   * SIOCOUTQ, FIONBIO) */
  virtual SysResult Ioctl(int fd, unsigned long request, int* arg) = 0;
  /** @see man 2 sendmsg */
  virtual SysResult SendMsg(int fd, const msghdr* msg, int flags) = 0;
  /** @see man 2 recvmsg */
  virtual SysResult RecvMsg(int fd, msghdr* msg, int flags) = 0;
  /** @see man 2 sendto */
  virtual SysResult SendTo(int fd, const void* buf, size_t len, int flags,
                           const sockaddr* to, socklen_t to_len) = 0;
  /** @see man 2 recvfrom */
  virtual SysResult RecvFrom(int fd, void* buf, size_t len, int flags,
                             sockaddr* from, socklen_t* from_len) = 0;
  /** @see man 2 read */
  virtual SysResult Read(int fd, void* buf, size_t len) = 0;
  /** @see man 2 write */
  virtual SysResult Write(int fd, const void* buf, size_t len) = 0;
  /** @see man 2 shutdown */
  virtual SysResult Shutdown(int fd, int how) = 0;
  /** @see man 2 getsockopt */
  virtual SysResult GetSockOpt(int fd, int level, int name, void* val,
                               socklen_t* len) = 0;
  /** @see man 2 setsockopt */
  virtual SysResult SetSockOpt(int fd, int level, int name, const void* val,
                               socklen_t len) = 0;
  /** @see man 2 getsockname */
  virtual SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) = 0;
  /** @see man 2 getpeername */
  virtual SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) = 0;
  /** @see man 2 poll */
  virtual SysResult Poll(pollfd* fds, nfds_t nfds, int timeout_ms) = 0;
  /** @see man 2 epoll_create1 */
  virtual SysResult EpollCreate1(int flags) = 0;
  /** @see man 2 epoll_ctl */
  virtual SysResult EpollCtl(int epfd, int op, int fd, epoll_event* event) = 0;
  /** @see man 2 epoll_wait */
  virtual SysResult EpollWait(int epfd, epoll_event* events, int maxevents,
                              int timeout_ms) = 0;
  /** @see man 2 eventfd */
  virtual SysResult EventFd(unsigned int initval, int flags) = 0;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_OS_CALLS_H_
