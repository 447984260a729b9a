#include "core/host_identity.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST(HostIdentity, StableWithinAProcess) {
  const HostIdentity a = CurrentHost();
  const HostIdentity b = CurrentHost();
  ASSERT_FALSE(a.key.empty()) << "boot id and network namespace are readable";
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.addresses, b.addresses);
  EXPECT_EQ(a.addresses.find("127.0.0.1"), std::string::npos)
      << "loopback addresses name no host";
}

TEST(HostIdentity, AnotherNetworkNamespaceIsAnotherHost) {
  if (geteuid() != 0) GTEST_SKIP() << "unshare(CLONE_NEWNET) needs root";
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (unshare(CLONE_NEWNET) != 0) _exit(2);
    const std::string key = CurrentHost().key;
    (void)!write(pipe_fds[1], key.data(), key.size());
    _exit(0);
  }
  close(pipe_fds[1]);
  char buf[256] = {};
  const ssize_t n = read(pipe_fds[0], buf, sizeof(buf) - 1);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
    GTEST_SKIP() << "unshare(CLONE_NEWNET) is not allowed here";
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf, n), CurrentHost().key);
}

}  // namespace
}  // namespace diskwire
