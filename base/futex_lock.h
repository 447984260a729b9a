// File: base/futex_lock.h
// A mutex for the healthy send path: one compare-and-swap to take it and one
// exchange to let it go when nobody waits, and the futex only then.
//
// absl::Mutex costs about 60 instructions a lock and unlock, and its unlock
// re-reads and re-swaps the word for its waiter queue and event hooks. A
// session's send lock is taken on every send and almost never contended (two
// threads writing one socket, or a swap taking the session), and it needs no
// condition variable: that is the case this lock is for. It is not fair, has
// no deadlock detection and no condition variable.

#ifndef DISKWIRE_BASE_FUTEX_LOCK_H_
#define DISKWIRE_BASE_FUTEX_LOCK_H_

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"

namespace diskwire {

class ABSL_LOCKABLE FutexLock {
 public:
  FutexLock() = default;
  FutexLock(const FutexLock&) = delete;
  FutexLock& operator=(const FutexLock&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    uint32_t free = kFree;
    if (!word_.compare_exchange_strong(free, kHeld, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      LockContended();
    }
  }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    if (word_.exchange(kFree, std::memory_order_release) == kHeldWithWaiters) {
      syscall(SYS_futex, &word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }

  // For the thread-safety analysis only: nothing is checked at run time.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  static constexpr uint32_t kFree = 0;
  static constexpr uint32_t kHeld = 1;
  static constexpr uint32_t kHeldWithWaiters = 2;

  // Spins a little (the holder is mostly between a send and a copy), then
  // sleeps. Once a thread has slept it takes the lock as kHeldWithWaiters,
  // since others may sleep behind it (Drepper, "Futexes Are Tricky", mutex 3).
  void LockContended() {
    for (int i = 0; i < 100; ++i) {
      __builtin_ia32_pause();
      uint32_t free = kFree;
      if (word_.load(std::memory_order_relaxed) == kFree &&
          word_.compare_exchange_weak(free, kHeld, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return;
      }
    }
    while (word_.exchange(kHeldWithWaiters, std::memory_order_acquire) !=
           kFree) {
      syscall(SYS_futex, &word_, FUTEX_WAIT_PRIVATE, kHeldWithWaiters, nullptr,
              nullptr, 0);
    }
  }

  std::atomic<uint32_t> word_{kFree};
};

// Holds a FutexLock for a scope, as absl::MutexLock does an absl::Mutex.
class ABSL_SCOPED_LOCKABLE FutexLockHolder {
 public:
  explicit FutexLockHolder(FutexLock* lock) ABSL_EXCLUSIVE_LOCK_FUNCTION(lock)
      : lock_(lock) {
    lock_->Lock();
  }
  ~FutexLockHolder() ABSL_UNLOCK_FUNCTION() { lock_->Unlock(); }
  FutexLockHolder(const FutexLockHolder&) = delete;
  FutexLockHolder& operator=(const FutexLockHolder&) = delete;

 private:
  FutexLock* const lock_;
};

}  // namespace diskwire

#endif  // DISKWIRE_BASE_FUTEX_LOCK_H_
