#include "core/clock.h"

#include "core/fake_clock.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST(RealClockTest, MonotonicNeverGoesBack) {
  RealClock* clock = RealClock::Get();
  int64_t prev = clock->NowNs();
  for (int i = 0; i < 1000; ++i) {
    int64_t now = clock->NowNs();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST(RealClockTest, RealtimeIsAfter2020) {
  // 2020-01-01T00:00:00Z: a realtime clock reading earlier than this is not
  // the epoch clock.
  EXPECT_GT(RealClock::Get()->RealtimeNs(), 1'577'836'800LL * kNsPerSec);
}

TEST(RealClockTest, GetReturnsOneInstance) {
  EXPECT_EQ(RealClock::Get(), RealClock::Get());
}

TEST(FakeClockTest, StartsWhereToldAndMovesOnlyOnAdvance) {
  FakeClock clock(5 * kNsPerSec);
  EXPECT_EQ(clock.NowNs(), 5 * kNsPerSec);
  EXPECT_EQ(clock.NowNs(), 5 * kNsPerSec);
  clock.AdvanceMs(3);
  EXPECT_EQ(clock.NowNs(), 5 * kNsPerSec + 3 * kNsPerMs);
  clock.AdvanceUs(7);
  EXPECT_EQ(clock.NowNs(), 5 * kNsPerSec + 3 * kNsPerMs + 7 * kNsPerUs);
}

TEST(FakeClockTest, NegativeAdvanceIsIgnored) {
  FakeClock clock(100);
  clock.Advance(-50);
  EXPECT_EQ(clock.NowNs(), 100);
}

TEST(FakeClockTest, RealtimeFollowsMonotonicAndCanJump) {
  FakeClock clock;
  int64_t rt0 = clock.RealtimeNs();
  EXPECT_EQ(rt0, FakeClock::kDefaultRealtimeStartNs);
  clock.AdvanceMs(2);
  EXPECT_EQ(clock.RealtimeNs(), rt0 + 2 * kNsPerMs);
  clock.SetRealtimeNs(42);
  EXPECT_EQ(clock.RealtimeNs(), 42);
  EXPECT_EQ(clock.NowNs(), 2 * kNsPerMs);  // Monotonic time is untouched.
}

}  // namespace
}  // namespace diskwire
