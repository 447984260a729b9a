// A mutex another thread was queued on when the process forked: the child's
// renewed copy serves a contended Lock(), where an unlocked copy hangs it.

#include "base/fork_mutex.h"

#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Forks while holding `mu` with another thread queued on it; in the child,
// `release` lets go of the copy, then two threads contend for it. True when
// the child finished within 3 s.
template <typename Release>
bool ChildContendsAfterFork(Release release) {
  absl::Mutex mu;
  mu.Lock();
  std::thread queued([&] {
    mu.Lock();
    mu.Unlock();
  });
  absl::SleepFor(absl::Milliseconds(100));  // queued waits on mu now
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(3);  // a hang ends the child with SIGALRM
    release(&mu);
    std::thread holder([&] {
      mu.Lock();
      absl::SleepFor(absl::Milliseconds(200));
      mu.Unlock();
    });
    absl::SleepFor(absl::Milliseconds(50));  // holder has it
    mu.Lock();
    mu.Unlock();
    holder.join();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  mu.Unlock();
  queued.join();
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(ForkMutex, ARenewedMutexServesTheChild) {
  EXPECT_TRUE(
      ChildContendsAfterFork([](absl::Mutex* mu) { RenewInForkChild(mu); }));
}

TEST(ForkMutex, AnUnlockedCopyHangsTheChild) {
  // Why RenewInForkChild exists: if this starts passing, absl changed.
  EXPECT_FALSE(ChildContendsAfterFork(
      [](absl::Mutex* mu) ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); }));
}

}  // namespace
}  // namespace diskwire
