// fork() with the engine running, as PostgreSQL's postmaster forks a backend
// for each connection:
// - the child closes its copies of the engine's private fds before the
//   application runs again, and their numbers are the application's from
//   then on (a stale mark made a backend's close() of a file it opened under
//   such a number fail with EBADF). The eventfd the shim's waits watch
//   becomes the child's own.
// - the engine's locks serve the child even when a thread of the parent was
//   waiting for one at the fork (a backend hung in its first epoll_ctl()).

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/thread_waits.h"
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

// Forks as the shim does (the engine's handlers on both sides of fork()); the
// child runs `in_child` and exits with what it returns. Returns the child's
// exit code, or -1 when it did not exit.
template <typename InChild>
int ForkEngine(EngineImpl* e, InChild in_child) {
  e->BeforeFork();
  const pid_t pid = fork();
  if (pid == 0) {
    e->AfterForkChild();
    _exit(in_child());
  }
  e->AfterForkParent();
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

TEST_F(EngineTest, AForkedChildLetsGoOfTheEnginesFds) {
  Connect();  // the client's engine runs its loop: epoll, eventfds, watcher
  const std::vector<int> before = PrivateFds(*a_);
  const int wake = a_->wake_fd();
  ASSERT_GE(before.size(), 3u) << "the loop's fds are private";
  const int wrong = ForkEngine(a_.get(), [&] {
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
    return wrong;
  });
  // 1: the wake eventfd is gone; 2: it is the parent's; 4: a private mark
  // stayed; 8: a copy stayed open; 16: the application's file was refused.
  EXPECT_EQ(wrong, 0);
  for (int fd : before) EXPECT_TRUE(Open(fd)) << "the parent's fd " << fd;
}

// The fds in this process that name files or directories below `dir`.
std::vector<int> FdsBelow(const std::string& dir) {
  std::vector<int> fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.rfind(dir + "/", 0) == 0) {
      fds.push_back(std::stoi(e.path().filename().string()));
    }
  }
  return fds;
}

// The files a volume keeps open (a channel's lock and segment) are the
// engine's own: private in the process that opened them, so that the
// application cannot close them, and closed in a forked child, which would
// otherwise hold the channel's lock and its deleted segments for as long as
// it lives.
TEST_F(EngineTest, TheVolumesFilesArePrivateAndAForkedChildClosesThem) {
  Connect(Mode::kStorage);  // every byte goes through the channels
  SendAll(a_.get(), client_, std::string(5000, 'x'), 1);
  std::vector<int> a_files;
  for (int fd : FdsBelow(dir_)) {
    EXPECT_TRUE(a_->IsPrivate(fd) || b_->IsPrivate(fd))
        << "fd " << fd << " of a volume is nobody's";
    if (a_->IsPrivate(fd)) a_files.push_back(fd);
  }
  ASSERT_FALSE(a_files.empty()) << "the client's channel holds no file";
  const int still_open = ForkEngine(a_.get(), [&] {
    int n = 0;
    for (int fd : a_files) n += Open(fd) ? 1 : 0;
    return n;
  });
  EXPECT_EQ(still_open, 0) << "of the parent's volume files stayed open";
  for (int fd : a_files) EXPECT_TRUE(Open(fd)) << "the parent's fd " << fd;
}

TEST_F(EngineTest, TheEnginesLocksServeAChildForkedWhileAThreadWaited) {
  Connect();
  // A thread of the parent takes the session table's lock again and again:
  // it waits for it while the fork holds it.
  std::atomic<bool> stop{false};
  std::atomic<pid_t> busy_tid{0};
  std::thread busy([&] {
    busy_tid.store(ThisThreadId());
    while (!stop.load()) a_->OnEpollCtl(-1, EPOLL_CTL_DEL, client_, nullptr);
  });
  while (busy_tid.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  a_->BeforeFork();
  const bool queued = SleepsOnAFutex(busy_tid.load(), absl::Seconds(5));
  const pid_t pid = fork();
  if (pid == 0) {
    a_->AfterForkChild();
    alarm(5);  // a hang ends the child with SIGALRM
    // Two threads of the child contend for the same lock: one holds it (the
    // fork handler's locks) until the other is seen waiting for it.
    const pid_t main_tid = ThisThreadId();
    std::atomic<bool> held{false};
    std::thread holder([&] {
      a_->BeforeFork();
      held.store(true);
      if (!SleepsOnAFutex(main_tid, absl::Seconds(2))) _exit(3);
      a_->AfterForkParent();
    });
    while (!held.load()) absl::SleepFor(absl::Milliseconds(1));
    a_->OnEpollCtl(-1, EPOLL_CTL_DEL, client_, nullptr);
    holder.join();
    _exit(0);
  }
  a_->AfterForkParent();
  stop.store(true);
  busy.join();
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(queued) << "no thread was queued on the lock at the fork";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the child hung (signal "
      << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")";
}

}  // namespace
}  // namespace diskwire
