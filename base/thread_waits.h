// File: base/thread_waits.h
// For tests that need a thread to be waiting for a lock, not merely about to:
// what the kernel says the thread sleeps on.

#ifndef DISKWIRE_BASE_THREAD_WAITS_H_
#define DISKWIRE_BASE_THREAD_WAITS_H_

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace diskwire {

inline pid_t ThisThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Whether thread `tid` of this process sleeps on a futex (as a thread blocked
// on an absl::Mutex does) at some moment within `within`.
inline bool SleepsOnAFutex(pid_t tid, absl::Duration within) {
  const std::string wchan = absl::StrCat("/proc/self/task/", tid, "/wchan");
  const absl::Time deadline = absl::Now() + within;
  do {
    std::ifstream f(wchan);
    std::string where;
    std::getline(f, where);
    if (where.find("futex") != std::string::npos) return true;
    absl::SleepFor(absl::Milliseconds(1));
  } while (absl::Now() < deadline);
  return false;
}

}  // namespace diskwire

#endif  // DISKWIRE_BASE_THREAD_WAITS_H_
