// File: shim/fd_hooks.cc
// Closing and duplicating descriptors. Owned fds and epoll instances that hold
// them close through the engine; duplicates of owned fds are reported to it;
// descriptors the engine uses privately are never destroyed by the application
// (libc and daemons close ranges of fds they did not open).

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/hooks.h"
#include "shim/real_calls.h"

namespace diskwire::shim {
namespace {

// close() through the engine when it has an interest in `fd`.
int CloseFd(Engine* engine, int fd) {
  if (engine->Owns(fd) || IsMarkedEpollFd(fd)) {
    UnmarkEpollFd(fd);
    InsideDiskwire inside;
    return static_cast<int>(ReturnErrno(engine->Close(fd)));
  }
  if (engine->IsPrivate(fd)) {
    errno = EBADF;  // As far as the application knows, it was never open.
    return -1;
  }
  if (engine->CarriesDatagrams(fd)) {
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnDatagramClose(fd);
  }
  return Real().close(fd);
}

// Reports a successful duplication of an owned fd.
int AfterDup(int oldfd, int newfd, const void* caller) {
  if (newfd < 0) return newfd;
  Engine* engine = EngineFor(caller);
  if (engine != nullptr && engine->Owns(oldfd)) {
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnDup(oldfd, newfd);
  }
  return newfd;
}

// dup2/dup3 implicitly close `newfd`: an owned newfd is closed through the
// engine first, a private one is refused.
bool PrepareDupOnto(int newfd, const void* caller) {
  Engine* engine = EngineFor(caller);
  if (engine == nullptr) return true;
  if (engine->IsPrivate(newfd)) {
    errno = EBUSY;
    return false;
  }
  if (engine->Owns(newfd) || IsMarkedEpollFd(newfd)) {
    KeepErrno keep;
    CloseFd(engine, newfd);
  }
  if (engine->CarriesDatagrams(newfd)) {
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnDatagramClose(newfd);
  }
  return true;
}

// Closes [first, last] (close_range semantics with `flags`) except the fds the
// engine cares about, which are closed through it (or kept, if private).
int CloseRange(Engine* engine, unsigned int first, unsigned int last,
               int flags) {
  const unsigned int top = std::min<unsigned int>(last, Engine::kMaxFds - 1);
  unsigned int run_start = first;
  for (unsigned int fd = first; fd <= top && fd >= first; ++fd) {
    const int ifd = static_cast<int>(fd);
    if (engine->CarriesDatagrams(ifd) && (flags & CLOSE_RANGE_CLOEXEC) == 0) {
      KeepErrno keep;
      engine->OnDatagramClose(ifd);
    }
    const bool special =
        engine->IsPrivate(ifd) || engine->Owns(ifd) || IsMarkedEpollFd(ifd);
    if (!special) continue;
    if (fd > run_start && Real().close_range(run_start, fd - 1, flags) != 0) {
      return -1;
    }
    if (!engine->IsPrivate(ifd) && (flags & CLOSE_RANGE_CLOEXEC) == 0) {
      KeepErrno keep;
      CloseFd(engine, ifd);
    } else if (!engine->IsPrivate(ifd)) {
      Real().fcntl(ifd, F_SETFD, FD_CLOEXEC);
    }
    run_start = fd + 1;
  }
  if (run_start > last || run_start < first) return 0;
  return Real().close_range(run_start, last, flags);
}

}  // namespace

int CloseCall(int fd, const void* caller) {
  Engine* engine = EngineFor(caller);
  if (engine == nullptr) return Real().close(fd);
  return CloseFd(engine, fd);
}

int CloseRangeCall(unsigned int first, unsigned int last, int flags,
                   const void* caller) {
  Engine* engine = EngineFor(caller);
  if (engine == nullptr || first > last) {
    return Real().close_range(first, last, flags);
  }
  return CloseRange(engine, first, last, flags);
}

int DupCall(int fd, const void* caller) {
  return AfterDup(fd, Real().dup(fd), caller);
}

int Dup2Call(int oldfd, int newfd, const void* caller) {
  if (oldfd == newfd) return Real().dup2(oldfd, newfd);
  if (!PrepareDupOnto(newfd, caller)) return -1;
  return AfterDup(oldfd, Real().dup2(oldfd, newfd), caller);
}

int Dup3Call(int oldfd, int newfd, int flags, const void* caller) {
  if (oldfd == newfd) return Real().dup3(oldfd, newfd, flags);
  if (!PrepareDupOnto(newfd, caller)) return -1;
  return AfterDup(oldfd, Real().dup3(oldfd, newfd, flags), caller);
}

int FcntlCall(int fd, int cmd, void* arg, const void* caller) {
  const int result = Real().fcntl(fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    return AfterDup(fd, result, caller);
  }
  return result;
}

}  // namespace diskwire::shim

using diskwire::Engine;
using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(int, close, (int fd)) { return CloseCall(fd, DW_CALLER); }

DW_HOOK(int, close_range, (unsigned int first, unsigned int last, int flags)) {
  return CloseRangeCall(first, last, flags, DW_CALLER);
}

DW_HOOK(void, closefrom, (int lowfd)) {
  Engine* engine = EngineFor(DW_CALLER);
  if (engine == nullptr) return Real().closefrom(lowfd);
  KeepErrno keep;
  CloseRange(engine, static_cast<unsigned int>(std::max(lowfd, 0)), UINT_MAX,
             0);
}

DW_HOOK(int, dup, (int fd)) { return DupCall(fd, DW_CALLER); }

DW_HOOK(int, dup2, (int oldfd, int newfd)) {
  return Dup2Call(oldfd, newfd, DW_CALLER);
}

DW_HOOK(int, dup3, (int oldfd, int newfd, int flags)) {
  return Dup3Call(oldfd, newfd, flags, DW_CALLER);
}

// fcntl's argument is an int or a pointer depending on `cmd`; it is forwarded
// as a pointer-sized value, as libc's own wrapper reads it. F_SETFL
// (O_NONBLOCK) passes through: the engine reads the flags from the fd when it
// needs them.
DW_HOOK(int, fcntl, (int fd, int cmd, ...)) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return FcntlCall(fd, cmd, arg, DW_CALLER);
}

DW_HOOK(int, fcntl64, (int fd, int cmd, ...)) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  const int result = Real().fcntl64(fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
    return AfterDup(fd, result, DW_CALLER);
  }
  return result;
}

// FIONREAD and FIONBIO pass through: the engine keeps an owned fd naming a real
// socket or one end of a socket pair, and reads O_NONBLOCK from the fd.
DW_HOOK(int, ioctl, (int fd, unsigned long request, ...)) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return Real().ioctl(fd, request, arg);
}
