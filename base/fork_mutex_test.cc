// A mutex another thread was queued on when the process forked: the child's
// renewed copy serves a contended Lock(), where an unlocked copy hangs it.

#include "base/fork_mutex.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/thread_waits.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Forks while holding `mu` with another thread queued on it; in the child,
// `release` lets go of the copy, then one thread holds it until the other is
// seen waiting for it. The child's wait status: exit 0 when it finished, or
// SIGALRM when it hung for 3 s.
template <typename Release>
int ChildContendsAfterFork(Release release) {
  absl::Mutex mu;
  mu.Lock();
  std::atomic<pid_t> queued_tid{0};
  std::thread queued([&] {
    queued_tid.store(ThisThreadId());
    mu.Lock();
    mu.Unlock();
  });
  while (queued_tid.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(SleepsOnAFutex(queued_tid.load(), absl::Seconds(5)));
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(3);  // a hang ends the child with SIGALRM
    release(&mu);
    const pid_t main_tid = ThisThreadId();
    std::atomic<bool> held{false};
    std::thread holder([&] {
      mu.Lock();
      held.store(true);
      if (!SleepsOnAFutex(main_tid, absl::Seconds(2))) _exit(3);
      mu.Unlock();
    });
    while (!held.load()) absl::SleepFor(absl::Milliseconds(1));
    mu.Lock();
    mu.Unlock();
    holder.join();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  mu.Unlock();
  queued.join();
  return status;
}

TEST(ForkMutex, ARenewedMutexServesTheChild) {
  const int status =
      ChildContendsAfterFork([](absl::Mutex* mu) { RenewInForkChild(mu); });
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(ForkMutex, AnUnlockedCopyHangsTheChild) {
  // Why RenewInForkChild exists: if this starts passing, absl changed.
  const int status = ChildContendsAfterFork(
      [](absl::Mutex* mu) ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); });
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) << status;
}

}  // namespace
}  // namespace diskwire
