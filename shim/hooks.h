// File: shim/hooks.h
// Declarations of the hooks that other hooks route to (syscall(), the
// fortified variants, the exec family), so that a routed call takes exactly
// the path the application's own call would.

#ifndef DISKWIRE_SHIM_HOOKS_H_
#define DISKWIRE_SHIM_HOOKS_H_

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define DW_HOOK_DECL(ret, name, params) \
  extern "C" ret dw_hook_##name params __asm__(#name)

DW_HOOK_DECL(int, socket, (int, int, int));
DW_HOOK_DECL(int, shutdown, (int, int));
DW_HOOK_DECL(ssize_t, read, (int, void*, size_t));
DW_HOOK_DECL(ssize_t, readv, (int, const iovec*, int));
DW_HOOK_DECL(ssize_t, recvfrom,
             (int, void*, size_t, int, sockaddr*, socklen_t*));
DW_HOOK_DECL(ssize_t, recvmsg, (int, msghdr*, int));
DW_HOOK_DECL(int, recvmmsg, (int, mmsghdr*, unsigned int, int, timespec*));
DW_HOOK_DECL(ssize_t, write, (int, const void*, size_t));
DW_HOOK_DECL(ssize_t, writev, (int, const iovec*, int));
DW_HOOK_DECL(ssize_t, sendto,
             (int, const void*, size_t, int, const sockaddr*, socklen_t));
DW_HOOK_DECL(ssize_t, sendmsg, (int, const msghdr*, int));
DW_HOOK_DECL(int, sendmmsg, (int, mmsghdr*, unsigned int, int));
DW_HOOK_DECL(ssize_t, sendfile64, (int, int, off64_t*, size_t));
DW_HOOK_DECL(ssize_t, splice,
             (int, loff_t*, int, loff_t*, size_t, unsigned int));
DW_HOOK_DECL(int, poll, (pollfd*, nfds_t, int));
DW_HOOK_DECL(int, ppoll, (pollfd*, nfds_t, const timespec*, const sigset_t*));
DW_HOOK_DECL(int, select, (int, fd_set*, fd_set*, fd_set*, timeval*));
DW_HOOK_DECL(int, epoll_ctl, (int, int, int, epoll_event*));
DW_HOOK_DECL(int, execve, (const char*, char* const*, char* const*));
DW_HOOK_DECL(int, execvpe, (const char*, char* const*, char* const*));

namespace diskwire::shim {

// Hooks whose behaviour depends on who calls (a call from inside libdiskwire
// passes straight through): the hook passes its own return address, and
// syscall() passes its caller's.
int ConnectCall(int fd, const sockaddr* addr, socklen_t len,
                const void* caller);
int Accept4Call(int fd, sockaddr* addr, socklen_t* len, int flags,
                const void* caller);
int CloseCall(int fd, const void* caller);
int CloseRangeCall(unsigned int first, unsigned int last, int flags,
                   const void* caller);
int DupCall(int fd, const void* caller);
int Dup2Call(int oldfd, int newfd, const void* caller);
int Dup3Call(int oldfd, int newfd, int flags, const void* caller);
int FcntlCall(int fd, int cmd, void* arg, const void* caller);

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_HOOKS_H_
