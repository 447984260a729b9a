// The log's file sink in a process that limits the size of the files it
// writes (RLIMIT_FSIZE): sshd's sandboxed child sets it to 0, and any program
// may set it low.

#include "core/log.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

class LogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-log-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    config_.log_sink = LogSink::kFile;
    config_.log_path = dir_ + "/diskwire.log";
    config_.log_level = LogLevel::kInfo;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Contents() const {
    std::ifstream f(config_.log_path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  // In a child whose file size limit is `limit` bytes: logs `first`, then
  // `second`. Returns its wait status.
  int LogInChildLimitedTo(rlim_t limit, const std::string& first,
                          const std::string& second) {
    const pid_t pid = fork();
    if (pid == 0) {
      Logger log(config_);
      const rlimit lim{limit, limit};
      if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(2);
      log.Warn(first);
      log.Warn(second);
      _exit(0);
    }
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    return status;
  }

  std::string dir_;
  Config config_;
};

// Before: the write past the limit killed the process with SIGXFSZ.
TEST_F(LogFileTest, ALineBeyondTheFileSizeLimitIsDroppedNotFatal) {
  const int status = LogInChildLimitedTo(0, "a line", "another line");
  ASSERT_TRUE(WIFEXITED(status))
      << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(Contents(), "");
}

TEST_F(LogFileTest, LinesWithinTheLimitAreWrittenUntilOneWouldPassIt) {
  const std::string first = "fits within the limit";
  const int status =
      LogInChildLimitedTo(200, first, std::string(300, 'x'));  // would pass it
  ASSERT_TRUE(WIFEXITED(status))
      << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  const std::string got = Contents();
  EXPECT_NE(got.find(first), std::string::npos) << got;
  EXPECT_EQ(got.find("xxx"), std::string::npos) << got;
}

}  // namespace
}  // namespace diskwire
