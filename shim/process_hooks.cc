// File: shim/process_hooks.cc

#include "shim/process_hooks.h"

#include <alloca.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/hooks.h"
#include "shim/real_calls.h"

extern "C" {
// vfork() as fork(), running the atfork handlers.
__attribute__((visibility("hidden"))) pid_t dw_fork_for_vfork() {
  return diskwire::shim::Real().fork();
}
// Where vfork() jumps: the real vfork, or dw_fork_for_vfork once an engine
// exists (and until the real one is known).
__attribute__((visibility("hidden"))) void* dw_vfork_target =
    reinterpret_cast<void*>(&dw_fork_for_vfork);
}

namespace diskwire::shim {
namespace {

// The variables a preloaded process must hand on to the programs it runs:
// "LD_PRELOAD=..." and every "DISKWIRE_...=...", captured at load time.
const char** g_exported = nullptr;
size_t g_exported_count = 0;

bool Exported(const char* entry);

bool HasName(const char* entry, const char* name_eq, size_t len) {
  return strncmp(entry, name_eq, len) == 0;
}

__attribute__((constructor(102))) void CaptureExportedEnv() {
  if (CurrentEngine() == nullptr) {
    __atomic_store_n(&dw_vfork_target, reinterpret_cast<void*>(Real().vfork),
                     __ATOMIC_RELEASE);
  }
  if (environ == nullptr) return;
  size_t count = 0;
  for (char** e = environ; *e != nullptr; ++e) count += Exported(*e);
  if (count == 0) return;
  g_exported = static_cast<const char**>(calloc(count, sizeof(char*)));
  if (g_exported == nullptr) return;
  for (char** e = environ; *e != nullptr && g_exported_count < count; ++e) {
    const char* copy = Exported(*e) ? strdup(*e) : nullptr;
    if (copy != nullptr) g_exported[g_exported_count++] = copy;
  }
}

bool Exported(const char* entry) {
  return HasName(entry, "LD_PRELOAD=", 11) || HasName(entry, "DISKWIRE_", 9);
}

size_t CountEnv(char* const* envp) {
  size_t n = 0;
  while (envp != nullptr && envp[n] != nullptr) ++n;
  return n;
}

bool EnvHas(char* const* envp, const char* entry) {
  const size_t name_len = strchr(entry, '=') - entry + 1;
  for (size_t i = 0; envp != nullptr && envp[i] != nullptr; ++i) {
    if (HasName(envp[i], entry, name_len)) return true;
  }
  return false;
}

// Fills `out` (room for CountEnv(envp) + g_exported_count + 1) with `envp` plus
// every captured variable the program removed. Allocates nothing: it runs in
// vfork children.
char* const* WithExported(char* const* envp, char** out) {
  size_t n = CountEnv(envp);
  for (size_t i = 0; i < n; ++i) out[i] = envp[i];
  bool added = false;
  for (size_t i = 0; i < g_exported_count; ++i) {
    if (!EnvHas(envp, g_exported[i])) {
      out[n++] = const_cast<char*>(g_exported[i]);
      added = true;
    }
  }
  out[n] = nullptr;
  return added ? out : envp;
}

// Room for WithExported, on the caller's stack.
#define DW_ENV_ROOM(envp) \
  static_cast<char**>(    \
      alloca((CountEnv(envp) + g_exported_count + 1) * sizeof(char*)))

}  // namespace

void UseForkForVfork() {
  __atomic_store_n(&dw_vfork_target,
                   reinterpret_cast<void*>(&dw_fork_for_vfork),
                   __ATOMIC_RELEASE);
}

}  // namespace diskwire::shim

using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

// Tail jump to dw_vfork_target, leaving the caller's frame as vfork needs.
extern "C" DW_EXPORT __attribute__((naked)) pid_t dw_hook_vfork() __asm__(
    "vfork");
extern "C" pid_t dw_hook_vfork() {
#if defined(__x86_64__)
  __asm__("jmp *dw_vfork_target(%rip)");
#elif defined(__aarch64__)
  __asm__(
      "adrp x16, dw_vfork_target\n"
      "ldr x16, [x16, :lo12:dw_vfork_target]\n"
      "br x16\n");
#else
#error "diskwire: vfork trampoline needs this architecture"
#endif
}

DW_HOOK(int, daemon, (int nochdir, int noclose)) {
  return Real().daemon(nochdir, noclose);
}

namespace {

// _exit() and _Exit() skip the atexit handler that drains the engine (what a
// process wrote over the volume would die with it: a forking server's child
// that leaves by _exit, as Python's socketserver does). Not when a signal
// handler calls it while this thread was inside the engine, whose locks the
// interrupted frame may hold.
[[noreturn]] void LeaveNow(void (*real_exit)(int), int status) {
  diskwire::Engine* engine = CurrentEngine();
  if (engine != nullptr && t_inside_diskwire == 0) {
    InsideDiskwire inside;
    engine->BeforeExit();
  }
  real_exit(status);
  __builtin_unreachable();
}

}  // namespace

DW_HOOK(void, _exit, (int status)) { LeaveNow(Real()._exit, status); }

DW_HOOK(void, _Exit, (int status)) { LeaveNow(Real()._Exit, status); }

DW_HOOK(int, execve,
        (const char* path, char* const argv[], char* const envp[])) {
  return Real().execve(path, argv, WithExported(envp, DW_ENV_ROOM(envp)));
}

DW_HOOK(int, execvpe,
        (const char* file, char* const argv[], char* const envp[])) {
  return Real().execvpe(file, argv, WithExported(envp, DW_ENV_ROOM(envp)));
}

DW_HOOK(int, fexecve, (int fd, char* const argv[], char* const envp[])) {
  return Real().fexecve(fd, argv, WithExported(envp, DW_ENV_ROOM(envp)));
}

DW_HOOK(int, posix_spawn,
        (pid_t * pid, const char* path,
         const posix_spawn_file_actions_t* actions,
         const posix_spawnattr_t* attr, char* const argv[],
         char* const envp[])) {
  return Real().posix_spawn(pid, path, actions, attr, argv,
                            WithExported(envp, DW_ENV_ROOM(envp)));
}

DW_HOOK(int, posix_spawnp,
        (pid_t * pid, const char* file,
         const posix_spawn_file_actions_t* actions,
         const posix_spawnattr_t* attr, char* const argv[],
         char* const envp[])) {
  return Real().posix_spawnp(pid, file, actions, attr, argv,
                             WithExported(envp, DW_ENV_ROOM(envp)));
}

DW_HOOK(int, execv, (const char* path, char* const argv[])) {
  return dw_hook_execve(path, argv, environ);
}

DW_HOOK(int, execvp, (const char* file, char* const argv[])) {
  return dw_hook_execvpe(file, argv, environ);
}

// execl/execlp/execle: the variadic argument list becomes an argv on the
// stack (no allocation: these run in vfork children).
#define DW_COLLECT_ARGV(first, ap_name, argv_name)                 \
  size_t dw_argc = 1;                                              \
  {                                                                \
    va_list dw_count;                                              \
    va_copy(dw_count, ap_name);                                    \
    while (va_arg(dw_count, const char*) != nullptr) ++dw_argc;    \
    va_end(dw_count);                                              \
  }                                                                \
  char** argv_name =                                               \
      static_cast<char**>(alloca((dw_argc + 1) * sizeof(char*)));  \
  argv_name[0] = const_cast<char*>(first);                         \
  for (size_t i = 1; i <= dw_argc; ++i) {                          \
    argv_name[i] = i < dw_argc ? va_arg(ap_name, char*) : nullptr; \
  }

DW_HOOK(int, execl, (const char* path, const char* arg, ...)) {
  va_list ap;
  va_start(ap, arg);
  DW_COLLECT_ARGV(arg, ap, argv);
  va_end(ap);
  return dw_hook_execve(path, argv, environ);
}

DW_HOOK(int, execlp, (const char* file, const char* arg, ...)) {
  va_list ap;
  va_start(ap, arg);
  DW_COLLECT_ARGV(arg, ap, argv);
  va_end(ap);
  return dw_hook_execvpe(file, argv, environ);
}

DW_HOOK(int, execle, (const char* path, const char* arg, ...)) {
  va_list ap;
  va_start(ap, arg);
  DW_COLLECT_ARGV(arg, ap, argv);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return dw_hook_execve(path, argv, envp);
}

// syscall() with a socket-related number takes the same path as the libc call;
// every other number goes straight to the real syscall().
DW_HOOK(long, syscall, (long number, ...)) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& v : a) v = va_arg(ap, long);
  va_end(ap);
  const void* caller = DW_CALLER;
  auto p = [&](int i) { return reinterpret_cast<void*>(a[i]); };
  auto fd = [&](int i) { return static_cast<int>(a[i]); };
  switch (number) {
    case SYS_socket:
      return dw_hook_socket(fd(0), fd(1), fd(2));
    case SYS_connect:
      return ConnectCall(fd(0), static_cast<sockaddr*>(p(1)),
                         static_cast<socklen_t>(a[2]), caller);
    case SYS_accept:
      return Accept4Call(fd(0), static_cast<sockaddr*>(p(1)),
                         static_cast<socklen_t*>(p(2)), 0, caller);
    case SYS_accept4:
      return Accept4Call(fd(0), static_cast<sockaddr*>(p(1)),
                         static_cast<socklen_t*>(p(2)), fd(3), caller);
    case SYS_read:
      return dw_hook_read(fd(0), p(1), a[2]);
    case SYS_readv:
      return dw_hook_readv(fd(0), static_cast<iovec*>(p(1)), fd(2));
    case SYS_recvfrom:
      return dw_hook_recvfrom(fd(0), p(1), a[2], fd(3),
                              static_cast<sockaddr*>(p(4)),
                              static_cast<socklen_t*>(p(5)));
    case SYS_recvmsg:
      return dw_hook_recvmsg(fd(0), static_cast<msghdr*>(p(1)), fd(2));
    case SYS_recvmmsg:
      return dw_hook_recvmmsg(fd(0), static_cast<mmsghdr*>(p(1)),
                              static_cast<unsigned int>(a[2]), fd(3),
                              static_cast<timespec*>(p(4)));
    case SYS_write:
      return dw_hook_write(fd(0), p(1), a[2]);
    case SYS_writev:
      return dw_hook_writev(fd(0), static_cast<iovec*>(p(1)), fd(2));
    case SYS_sendto:
      return dw_hook_sendto(fd(0), p(1), a[2], fd(3),
                            static_cast<sockaddr*>(p(4)),
                            static_cast<socklen_t>(a[5]));
    case SYS_sendmsg:
      return dw_hook_sendmsg(fd(0), static_cast<msghdr*>(p(1)), fd(2));
    case SYS_sendmmsg:
      return dw_hook_sendmmsg(fd(0), static_cast<mmsghdr*>(p(1)),
                              static_cast<unsigned int>(a[2]), fd(3));
    case SYS_sendfile:
      return dw_hook_sendfile64(fd(0), fd(1), static_cast<off64_t*>(p(2)),
                                a[3]);
    case SYS_splice:
      return dw_hook_splice(fd(0), static_cast<loff_t*>(p(1)), fd(2),
                            static_cast<loff_t*>(p(3)), a[4],
                            static_cast<unsigned int>(a[5]));
    case SYS_shutdown:
      return dw_hook_shutdown(fd(0), fd(1));
    case SYS_close:
      return CloseCall(fd(0), caller);
    case SYS_close_range:
      return CloseRangeCall(static_cast<unsigned int>(a[0]),
                            static_cast<unsigned int>(a[1]), fd(2), caller);
    case SYS_dup:
      return DupCall(fd(0), caller);
#ifdef SYS_dup2
    case SYS_dup2:
      return Dup2Call(fd(0), fd(1), caller);
#endif
    case SYS_dup3:
      return Dup3Call(fd(0), fd(1), fd(2), caller);
    case SYS_fcntl:
      return FcntlCall(fd(0), fd(1), p(2), caller);
#ifdef SYS_poll
    case SYS_poll:
      return dw_hook_poll(static_cast<pollfd*>(p(0)), static_cast<nfds_t>(a[1]),
                          fd(2));
#endif
    case SYS_ppoll:
      return dw_hook_ppoll(
          static_cast<pollfd*>(p(0)), static_cast<nfds_t>(a[1]),
          static_cast<timespec*>(p(2)), static_cast<sigset_t*>(p(3)));
#ifdef SYS_select
    case SYS_select:
      return dw_hook_select(
          fd(0), static_cast<fd_set*>(p(1)), static_cast<fd_set*>(p(2)),
          static_cast<fd_set*>(p(3)), static_cast<timeval*>(p(4)));
#endif
    case SYS_epoll_ctl:
      return dw_hook_epoll_ctl(fd(0), fd(1), fd(2),
                               static_cast<epoll_event*>(p(3)));
    default:
      return Real().syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  }
}
