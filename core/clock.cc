#include "core/clock.h"

#include <time.h>

namespace diskwire {
namespace {

int64_t ReadClock(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

}  // namespace

int64_t RealClock::NowNs() const { return ReadClock(CLOCK_MONOTONIC); }

int64_t RealClock::RealtimeNs() const { return ReadClock(CLOCK_REALTIME); }

RealClock* RealClock::Get() {
  static RealClock* const clock = new RealClock();
  return clock;
}

}  // namespace diskwire
