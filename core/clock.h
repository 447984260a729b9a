// File: core/clock.h
// Time as core/ sees it. Every component whose behaviour depends on time
// (flush deadlines, failure detection, heartbeats) takes a Clock*, so tests can
// drive time with FakeClock (core/fake_clock.h) instead of sleeping.

#ifndef DISKWIRE_CORE_CLOCK_H_
#define DISKWIRE_CORE_CLOCK_H_

#include <cstdint>

namespace diskwire {

// A source of time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  // Monotonic nanoseconds since an arbitrary origin; never goes backwards.
  // Use it for every deadline and duration.
  virtual int64_t NowNs() const = 0;

  // Wall-clock nanoseconds since the Unix epoch; may jump. Use it only for
  // timestamps another host reads (record times, heartbeats).
  virtual int64_t RealtimeNs() const = 0;
};

// The system clocks: CLOCK_MONOTONIC and CLOCK_REALTIME.
class RealClock final : public Clock {
 public:
  int64_t NowNs() const override;
  int64_t RealtimeNs() const override;

  // A process-wide instance; never destroyed.
  static RealClock* Get();
};

inline constexpr int64_t kNsPerUs = 1000;
inline constexpr int64_t kNsPerMs = 1000 * 1000;
inline constexpr int64_t kNsPerSec = 1000 * 1000 * 1000;

}  // namespace diskwire

#endif  // DISKWIRE_CORE_CLOCK_H_
