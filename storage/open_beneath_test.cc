// OpenBeneathByComponents against real directories, files and planted links.

#include "storage/open_beneath.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace diskwire::storage {
namespace {

namespace fs = std::filesystem;

class OpenBeneathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = std::string(tmp ? tmp : "/tmp") + "/open_beneath_" +
           std::to_string(getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/volume/channels/c1");
    fs::create_directories(dir_ + "/outside");
    std::ofstream(dir_ + "/volume/channels/c1/0.seg") << "record";
    std::ofstream(dir_ + "/outside/secret") << "secret";
    root_ = ::open((dir_ + "/volume").c_str(), O_PATH | O_DIRECTORY);
    ASSERT_GE(root_, 0);
  }
  void TearDown() override {
    ::close(root_);
    fs::remove_all(dir_);
  }
  // errno of a failed open, 0 when it opened.
  int Errno(const std::string& rel, int flags = O_RDONLY) {
    const int fd = OpenBeneathByComponents(root_, rel, flags, 0644);
    if (fd >= 0) {
      ::close(fd);
      return 0;
    }
    return errno;
  }

  std::string dir_;
  int root_ = -1;
};

TEST_F(OpenBeneathTest, OpensAndCreatesBelowTheRoot) {
  const int fd =
      OpenBeneathByComponents(root_, "channels/c1/0.seg", O_RDONLY, 0);
  ASSERT_GE(fd, 0);
  char buf[16] = {};
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 6);
  ::close(fd);
  EXPECT_EQ(Errno("channels/c1/1.seg", O_WRONLY | O_CREAT | O_EXCL), 0);
  EXPECT_TRUE(fs::exists(dir_ + "/volume/channels/c1/1.seg"));
  EXPECT_EQ(Errno(".", O_PATH | O_DIRECTORY), 0);
  EXPECT_EQ(Errno("channels", O_PATH | O_DIRECTORY), 0);
}

TEST_F(OpenBeneathTest, RefusesALinkAnywhereOnThePath) {
  fs::create_directory_symlink(dir_ + "/outside", dir_ + "/volume/channels/c2");
  fs::create_symlink(dir_ + "/outside/secret",
                     dir_ + "/volume/channels/c1/2.seg");
  EXPECT_EQ(Errno("channels/c2/secret"), ELOOP);         // a directory link
  EXPECT_EQ(Errno("channels/c1/2.seg"), ELOOP);          // the file itself
  EXPECT_EQ(Errno("channels/c1/2.seg", O_PATH), ELOOP);  // even with O_PATH
  EXPECT_EQ(Errno("channels/c2", O_PATH | O_DIRECTORY), ELOOP);
  EXPECT_EQ(Errno("channels/c2/new", O_WRONLY | O_CREAT), ELOOP);
  EXPECT_FALSE(fs::exists(dir_ + "/outside/new"));
}

TEST_F(OpenBeneathTest, RefusesDotDot) {
  EXPECT_EQ(Errno("../outside/secret"), EXDEV);
  EXPECT_EQ(Errno("channels/../../outside/secret"), EXDEV);
}

TEST_F(OpenBeneathTest, MissingComponentsAreENOENT) {
  EXPECT_EQ(Errno("channels/nope/0.seg"), ENOENT);
}

}  // namespace
}  // namespace diskwire::storage
