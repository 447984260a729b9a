// fork() with the engine running: the child closes its copies of the engine's
// private fds before the application runs again, and their numbers are the
// application's from then on (a stale mark made the application's close() of
// a file it opened under such a number fail with EBADF: PostgreSQL's
// backends, forked after the postmaster's engine started, hit it). The
// eventfd the shim's waits watch becomes the child's own.

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

std::vector<int> PrivateFds(const EngineImpl& e) {
  std::vector<int> fds;
  for (int fd = 0; fd < 4096; ++fd) {
    if (e.IsPrivate(fd)) fds.push_back(fd);
  }
  return fds;
}

bool Open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

// Whether `fd` in this process and in its parent is one open file.
bool SharedWithParent(int fd) {
  return syscall(SYS_kcmp, getppid(), getpid(), KCMP_FILE, fd, fd) == 0;
}

TEST_F(EngineTest, AForkedChildLetsGoOfTheEnginesFds) {
  Connect();  // the client's engine runs its loop: epoll, eventfds, watcher
  const std::vector<int> before = PrivateFds(*a_);
  const int wake = a_->wake_fd();
  ASSERT_GE(before.size(), 3u) << "the loop's fds are private";
  a_->BeforeFork();
  const pid_t pid = fork();
  if (pid == 0) {
    a_->AfterForkChild();
    int wrong = 0;
    for (int fd : before) {
      if (fd == wake) {
        if (!a_->IsPrivate(fd) || !Open(fd)) wrong |= 1;
        if (SharedWithParent(fd)) wrong |= 2;
      } else {
        if (a_->IsPrivate(fd)) wrong |= 4;
        if (Open(fd)) wrong |= 8;
      }
    }
    // A file the application opens under a freed number closes as usual.
    const int file = open("/dev/null", O_RDONLY);
    if (a_->IsPrivate(file) || a_->Close(file).error == EBADF) wrong |= 16;
    _exit(wrong);
  }
  a_->AfterForkParent();
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  // 1: the wake eventfd is gone; 2: it is the parent's; 4: a private mark
  // stayed; 8: a copy stayed open; 16: the application's file was refused.
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int fd : before) EXPECT_TRUE(Open(fd)) << "the parent's fd " << fd;
}

}  // namespace
}  // namespace diskwire
