// File: shim/real_calls.h
// The real libc functions behind every hook, resolved once with
// dlsym(RTLD_NEXT), and RealOsCalls(): core/os_calls.h implemented on them.
//
// This is the only file that names libc symbols. DW_REAL_CALLS lists them, one
// line each: return type, name, parameter list. When nothing is preloaded
// RTLD_NEXT resolves to libc itself, so core/ tests use the same table.
//
// Thread safety: Real() is safe from any thread and from a call that arrives
// before static initialisation; the table never changes once resolved.

#ifndef DISKWIRE_SHIM_REAL_CALLS_H_
#define DISKWIRE_SHIM_REAL_CALLS_H_

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>

#include "core/os_calls.h"

#define DW_REAL_CALLS(X)                                                 \
  X(int, socket, (int, int, int))                                        \
  X(int, socketpair, (int, int, int, int*))                              \
  X(int, bind, (int, const sockaddr*, socklen_t))                        \
  X(int, listen, (int, int))                                             \
  X(int, connect, (int, const sockaddr*, socklen_t))                     \
  X(int, accept, (int, sockaddr*, socklen_t*))                           \
  X(int, accept4, (int, sockaddr*, socklen_t*, int))                     \
  X(ssize_t, read, (int, void*, size_t))                                 \
  X(ssize_t, readv, (int, const iovec*, int))                            \
  X(ssize_t, recv, (int, void*, size_t, int))                            \
  X(ssize_t, recvfrom, (int, void*, size_t, int, sockaddr*, socklen_t*)) \
  X(ssize_t, recvmsg, (int, msghdr*, int))                               \
  X(int, recvmmsg, (int, mmsghdr*, unsigned int, int, timespec*))        \
  X(ssize_t, write, (int, const void*, size_t))                          \
  X(ssize_t, writev, (int, const iovec*, int))                           \
  X(ssize_t, send, (int, const void*, size_t, int))                      \
  X(ssize_t, sendto,                                                     \
    (int, const void*, size_t, int, const sockaddr*, socklen_t))         \
  X(ssize_t, sendmsg, (int, const msghdr*, int))                         \
  X(int, sendmmsg, (int, mmsghdr*, unsigned int, int))                   \
  X(ssize_t, sendfile, (int, int, off_t*, size_t))                       \
  X(ssize_t, sendfile64, (int, int, off64_t*, size_t))                   \
  X(ssize_t, splice, (int, loff_t*, int, loff_t*, size_t, unsigned int)) \
  X(off64_t, lseek64, (int, off64_t, int))                               \
  X(ssize_t, pread64, (int, void*, size_t, off64_t))                     \
  X(int, close, (int))                                                   \
  X(int, close_range, (unsigned int, unsigned int, int))                 \
  X(void, closefrom, (int))                                              \
  X(int, shutdown, (int, int))                                           \
  X(int, dup, (int))                                                     \
  X(int, dup2, (int, int))                                               \
  X(int, dup3, (int, int, int))                                          \
  X(int, fcntl, (int, int, ...))                                         \
  X(int, fcntl64, (int, int, ...))                                       \
  X(int, ioctl, (int, unsigned long, ...))                               \
  X(int, poll, (pollfd*, nfds_t, int))                                   \
  X(int, ppoll, (pollfd*, nfds_t, const timespec*, const sigset_t*))     \
  X(int, select, (int, fd_set*, fd_set*, fd_set*, timeval*))             \
  X(int, pselect,                                                        \
    (int, fd_set*, fd_set*, fd_set*, const timespec*, const sigset_t*))  \
  X(int, epoll_create, (int))                                            \
  X(int, epoll_create1, (int))                                           \
  X(int, epoll_ctl, (int, int, int, epoll_event*))                       \
  X(int, epoll_wait, (int, epoll_event*, int, int))                      \
  X(int, epoll_pwait, (int, epoll_event*, int, int, const sigset_t*))    \
  X(int, epoll_pwait2,                                                   \
    (int, epoll_event*, int, const timespec*, const sigset_t*))          \
  X(int, getpeername, (int, sockaddr*, socklen_t*))                      \
  X(int, getsockname, (int, sockaddr*, socklen_t*))                      \
  X(int, getsockopt, (int, int, int, void*, socklen_t*))                 \
  X(int, setsockopt, (int, int, int, const void*, socklen_t))            \
  X(int, eventfd, (unsigned int, int))                                   \
  X(pid_t, fork, ())                                                     \
  X(pid_t, vfork, ())                                                    \
  X(int, daemon, (int, int))                                             \
  X(void, _exit, (int))                                                  \
  X(void, _Exit, (int))                                                  \
  X(int, execve, (const char*, char* const*, char* const*))              \
  X(int, execvpe, (const char*, char* const*, char* const*))             \
  X(int, fexecve, (int, char* const*, char* const*))                     \
  X(int, posix_spawn,                                                    \
    (pid_t*, const char*, const posix_spawn_file_actions_t*,             \
     const posix_spawnattr_t*, char* const*, char* const*))              \
  X(int, posix_spawnp,                                                   \
    (pid_t*, const char*, const posix_spawn_file_actions_t*,             \
     const posix_spawnattr_t*, char* const*, char* const*))              \
  X(long, syscall, (long, ...))                                          \
  X(int, sigaction, (int, const struct sigaction*, struct sigaction*))   \
  X(sighandler_t, signal, (int, sighandler_t))                           \
  X(ssize_t, __read_chk, (int, void*, size_t, size_t))                   \
  X(ssize_t, __recv_chk, (int, void*, size_t, size_t, int))              \
  X(ssize_t, __recvfrom_chk,                                             \
    (int, void*, size_t, size_t, int, sockaddr*, socklen_t*))            \
  X(int, __poll_chk, (pollfd*, nfds_t, int, size_t))                     \
  X(int, __ppoll_chk,                                                    \
    (pollfd*, nfds_t, const timespec*, const sigset_t*, size_t))         \
  X(void, __chk_fail, ())

namespace diskwire::shim {

// One pointer per real function; nullptr when libc lacks the symbol.
struct RealCalls {
#define DW_DECLARE_REAL_(ret, name, params) ret(*name) params = nullptr;
  DW_REAL_CALLS(DW_DECLARE_REAL_)
#undef DW_DECLARE_REAL_
};

namespace internal {
extern RealCalls g_real;
extern std::atomic<bool> g_real_ready;
extern bool g_sends_are_libcs;
const RealCalls& ResolveRealCalls();
}  // namespace internal

// Returns the real functions, resolving them on the first call (pthread_once;
// a call re-entering from the resolving thread, e.g. through a preloaded
// allocator that reads a file, resolves again rather than deadlocking). Aborts
// with a message naming the symbol when dlsym(RTLD_NEXT) answers with a
// function of this same library (a circular reference: the library is loaded
// twice, or linked into the program it preloads).
inline const RealCalls& Real() {
  if (internal::g_real_ready.load(std::memory_order_acquire)) {
    return internal::g_real;
  }
  return internal::ResolveRealCalls();
}

// Whether Real().sendto and Real().sendmsg are the C library's own (no library
// preloaded after diskwire defines them), so that RealOsCalls() may make a
// non-blocking send as a direct system call with the same meaning.
inline bool SendsAreLibcs() {
  Real();
  return internal::g_sends_are_libcs;
}

}  // namespace diskwire::shim

namespace diskwire {

// The OsCalls of the process, on the real functions: returns value + errno and
// leaves the caller's errno untouched. Never nullptr; lives for the process.
OsCalls* RealOsCalls();

}  // namespace diskwire

#endif  // DISKWIRE_SHIM_REAL_CALLS_H_
