// File: shim/raw_syscall.h
// System calls that enter the kernel directly. RawWrite is for messages the
// shim must print where libc cannot be used: while the real-call table is
// being resolved (so libc's syscall() would come back into the hooks) and
// inside signal handlers. Async-signal-safe; never touches errno.

#ifndef DISKWIRE_SHIM_RAW_SYSCALL_H_
#define DISKWIRE_SHIM_RAW_SYSCALL_H_

#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

namespace diskwire::shim {

// System call `nr` with up to six arguments, straight into the kernel:
// returns its answer, or -errno. Never touches errno, and is not a
// cancellation point.
inline long RawSyscall(long nr, long a1 = 0, long a2 = 0, long a3 = 0,
                       long a4 = 0, long a5 = 0, long a6 = 0) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8),
                     "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a1;
  register long x1 __asm__("x1") = a2;
  register long x2 __asm__("x2") = a3;
  register long x3 __asm__("x3") = a4;
  register long x4 __asm__("x4") = a5;
  register long x5 __asm__("x5") = a6;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
#else
#error "diskwire: RawSyscall needs a syscall sequence for this architecture"
#endif
}

// Returns the kernel's answer: bytes written, or -errno.
inline long RawWrite(int fd, const void* buf, size_t len) {
  return RawSyscall(SYS_write, fd, reinterpret_cast<long>(buf),
                    static_cast<long>(len));
}

// Writes all of the NUL-terminated `text` to fd 2, retrying short writes;
// gives up silently on an error (there is nowhere else to report it).
inline void RawWriteStderr(const char* text) {
  size_t len = strlen(text);
  while (len > 0) {
    long n = RawWrite(2, text, len);
    if (n <= 0) return;
    text += n;
    len -= static_cast<size_t>(n);
  }
}

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_RAW_SYSCALL_H_
