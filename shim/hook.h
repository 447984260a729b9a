// File: shim/hook.h
// The one way a hook is declared, and the few helpers every hook uses.
//
//   DW_HOOK(ssize_t, read, (int fd, void* buf, size_t len)) { ... }
//
// defines the exported C symbol `read` under the C++ name dw_hook_read, so that
// the definition never clashes with libc's declaration of `read` (whose
// exception specification differs from symbol to symbol).

#ifndef DISKWIRE_SHIM_HOOK_H_
#define DISKWIRE_SHIM_HOOK_H_

#include <errno.h>
#include <stdlib.h>

#include <memory>

#include "core/sys_result.h"

#define DW_EXPORT __attribute__((visibility("default")))

#define DW_HOOK(ret, name, params)                               \
  extern "C" DW_EXPORT ret dw_hook_##name params __asm__(#name); \
  extern "C" ret dw_hook_##name params

// The return address of the current hook: where the caller is.
#define DW_CALLER __builtin_return_address(0)

namespace diskwire::shim {

// Number of diskwire frames on this thread's stack (hooks that entered the
// engine, engine threads). The crash handler reads it from a signal handler,
// hence initial-exec TLS: no allocation, no lock.
extern thread_local int t_inside_diskwire
    __attribute__((tls_model("initial-exec")));

// Marks the current scope as diskwire code for the crash handler. Only used on
// paths that call the engine, never on the pass-through path.
class InsideDiskwire {
 public:
  InsideDiskwire() { ++t_inside_diskwire; }
  ~InsideDiskwire() { --t_inside_diskwire; }
  InsideDiskwire(const InsideDiskwire&) = delete;
  InsideDiskwire& operator=(const InsideDiskwire&) = delete;
};

// Saves errno and restores it when the scope ends: for notifications into the
// engine that must not disturb the errno a hook is about to return.
class KeepErrno {
 public:
  KeepErrno() : saved_(errno) {}
  ~KeepErrno() { errno = saved_; }
  KeepErrno(const KeepErrno&) = delete;
  KeepErrno& operator=(const KeepErrno&) = delete;

 private:
  int saved_;
};

// Turns an engine answer into what libc returns: the value, with errno set on
// failure.
inline ssize_t ReturnErrno(SysResult r) {
  if (!r.ok()) errno = r.error;
  return r.value;
}

// A malloc'd buffer: the shim does without the C++ library's operator new
// (libdiskwire.so loads no libstdc++; shim/BUILD.bazel).
struct FreeDeleter {
  void operator()(void* p) const { free(p); }
};
template <typename T>
using MallocBuffer = std::unique_ptr<T[], FreeDeleter>;
template <typename T>
MallocBuffer<T> AllocateBuffer(size_t count) {
  return MallocBuffer<T>(static_cast<T*>(malloc(count * sizeof(T))));
}

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_HOOK_H_
