// File: shim/raw_syscall.h
// A write(2) that enters the kernel directly, for messages the shim must print
// where libc cannot be used: while the real-call table is being resolved (so
// libc's syscall() would come back into the hooks) and inside signal handlers.
// Async-signal-safe; never touches errno.

#ifndef DISKWIRE_SHIM_RAW_SYSCALL_H_
#define DISKWIRE_SHIM_RAW_SYSCALL_H_

#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>

namespace diskwire::shim {

// Returns the kernel's answer: bytes written, or -errno.
inline long RawWrite(int fd, const void* buf, size_t len) {
#if defined(__x86_64__)
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(static_cast<long>(SYS_write)), "D"(fd), "S"(buf),
                     "d"(len)
                   : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = SYS_write;
  register long x0 __asm__("x0") = fd;
  register long x1 __asm__("x1") = reinterpret_cast<long>(buf);
  register long x2 __asm__("x2") = static_cast<long>(len);
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
  return x0;
#else
#error "diskwire: RawWrite needs a syscall sequence for this architecture"
#endif
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
