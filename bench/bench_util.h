// File: bench/bench_util.h
// The few helpers every benchmark binary needs: a monotonic clock in seconds,
// the wall clock in nanoseconds (records carry it), and a fatal error line.

#ifndef DISKWIRE_BENCH_BENCH_UTIL_H_
#define DISKWIRE_BENCH_BENCH_UTIL_H_

#include <errno.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace diskwire::bench {

inline double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

// Prints "<program>: <what>: <status>" and exits 1.
[[noreturn]] inline void Die(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name,
               what.c_str(), s.ToString().c_str());
  std::exit(1);
}

}  // namespace diskwire::bench

#endif  // DISKWIRE_BENCH_BENCH_UTIL_H_
