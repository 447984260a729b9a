// FutexLock: mutual exclusion under contention, and a sleeping waiter woken.

#include "base/futex_lock.h"

#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/thread_waits.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Four threads increment a plain counter under the lock, yielding the CPU
// inside it now and then so that the others contend, spin and sleep: every
// increment counts.
TEST(FutexLock, ExcludesUnderContention) {
  FutexLock lock;
  int64_t counter = 0;
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        FutexLockHolder hold(&lock);
        const int64_t seen = counter;
        if (i % 16 == 0) sched_yield();
        counter = seen + 1;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counter, int64_t{kThreads} * kRounds);
}

// A thread that went to sleep on the held lock takes it when it is let go,
// and a third one after it: the wake is not lost.
TEST(FutexLock, WakesASleepingWaiter) {
  FutexLock lock;
  lock.Lock();
  std::atomic<pid_t> waiter_tid{0};
  std::atomic<bool> waiter_has_it{false};
  std::thread waiter([&] {
    waiter_tid.store(ThisThreadId());
    FutexLockHolder hold(&lock);
    waiter_has_it.store(true);
  });
  while (waiter_tid.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(SleepsOnAFutex(waiter_tid.load(), absl::Seconds(5)));
  EXPECT_FALSE(waiter_has_it.load());
  lock.Unlock();
  waiter.join();
  EXPECT_TRUE(waiter_has_it.load());
  FutexLockHolder again(&lock);  // free once the waiter let go
}

}  // namespace
}  // namespace diskwire
