// File: core/fake_clock.h
// A Clock that moves only when a test tells it to (testonly).

#ifndef DISKWIRE_CORE_FAKE_CLOCK_H_
#define DISKWIRE_CORE_FAKE_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "core/clock.h"

namespace diskwire {

// Thread-safe: time is held in atomics, so a test thread may Advance() while
// the code under test reads NowNs() on another thread. Both clocks advance
// together; the realtime clock starts at a fixed, plausible epoch time.
class FakeClock final : public Clock {
 public:
  static constexpr int64_t kDefaultRealtimeStartNs =
      1'700'000'000LL * kNsPerSec;

  explicit FakeClock(int64_t start_ns = 0)
      : now_ns_(start_ns), realtime_offset_ns_(kDefaultRealtimeStartNs) {}

  int64_t NowNs() const override {
    return now_ns_.load(std::memory_order_acquire);
  }
  int64_t RealtimeNs() const override {
    return NowNs() + realtime_offset_ns_.load(std::memory_order_acquire);
  }

  // Moves both clocks forward by `ns` (>= 0; negative values are ignored, a
  // monotonic clock never goes back).
  void Advance(int64_t ns) {
    if (ns > 0) now_ns_.fetch_add(ns, std::memory_order_acq_rel);
  }
  void AdvanceNs(int64_t ns) { Advance(ns); }
  void AdvanceMs(int64_t ms) { Advance(ms * kNsPerMs); }
  void AdvanceUs(int64_t us) { Advance(us * kNsPerUs); }

  // Makes the wall clock jump (it may go backwards) without touching NowNs().
  void SetRealtimeNs(int64_t realtime_ns) {
    realtime_offset_ns_.store(realtime_ns - NowNs(), std::memory_order_release);
  }

 private:
  std::atomic<int64_t> now_ns_;
  std::atomic<int64_t> realtime_offset_ns_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_FAKE_CLOCK_H_
