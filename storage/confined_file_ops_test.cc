// What a volume's directory grants its group and others, everything created
// below it grants too, whatever the creating process's umask: processes of
// different users share one volume (a root client, a database server running
// as its own user).

#include <fcntl.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/file_ops.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

namespace fs = std::filesystem;

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Sets the process's umask for one test.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

class ConfinedModesTest : public ::testing::Test {
 protected:
  // A directory and a file created through the ops, in a volume of `mode`.
  void Create(mode_t volume_mode, mode_t file_mode) {
    ASSERT_EQ(::chmod(dir_.path().c_str(), volume_mode), 0);
    auto ops = FileOps::Confined({dir_.path()});
    ASSERT_THAT(ops, IsOk());
    ASSERT_THAT((*ops)->MakeDir(sub()), IsOk());
    auto fd = (*ops)->Open(file(), O_WRONLY | O_CREAT | O_EXCL, file_mode);
    ASSERT_THAT(fd, IsOk());
    ASSERT_THAT((*ops)->Close(*fd), IsOk());
  }
  std::string sub() const { return dir_.path() + "/sub"; }
  std::string file() const { return dir_.path() + "/sub/f"; }

  ScratchDir dir_;
};

TEST_F(ConfinedModesTest, AVolumeSharedWithItsGroupGetsGroupWritableEntries) {
  ScopedUmask mask(022);
  Create(02770, 0666);
  EXPECT_EQ(ModeOf(sub()), 02775u);  // setgid from the kernel, g+w from us
  EXPECT_EQ(ModeOf(file()), 0664u);
}

TEST_F(ConfinedModesTest, AVolumeOpenToAllGetsEntriesOpenToAll) {
  ScopedUmask mask(077);
  Create(01777, 0666);
  EXPECT_EQ(ModeOf(sub()), 0777u);  // not the sticky bit
  EXPECT_EQ(ModeOf(file()), 0666u);
}

TEST_F(ConfinedModesTest, OnlyTheBitsAFileAsksForAreGranted) {
  ScopedUmask mask(077);
  Create(0777, 0640);
  EXPECT_EQ(ModeOf(file()), 0640u);  // never write or execute it did not ask
}

TEST_F(ConfinedModesTest, APrivateVolumeKeepsTheUmasksModes) {
  ScopedUmask mask(027);
  Create(0700, 0666);
  EXPECT_EQ(ModeOf(sub()), 0750u);
  EXPECT_EQ(ModeOf(file()), 0640u);
}

TEST_F(ConfinedModesTest, EveryDirectoryOfASharedVolumeIsWritableByItsGroup) {
  // What a process creates on first use (its inbox, its heartbeat, the
  // volume's directories): another user's process of the group posts to its
  // inbox, takes the volume's lock, and prunes.
  ScopedUmask mask(022);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 02770), 0);
  DirVolumeOptions options;
  options.node = "node-a";
  auto volume = OpenDirVolume(dir_.path(), options);
  ASSERT_THAT(volume, IsOk());
  int dirs = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_.path())) {
    const mode_t mode = ModeOf(e.path());
    const mode_t group = e.is_directory() ? 0070 : 0060;  // files: rw
    EXPECT_EQ(mode & group, group) << e.path() << " " << std::oct << mode;
    if (e.is_directory()) ++dirs;
  }
  EXPECT_GT(dirs, 0);
}

}  // namespace
}  // namespace diskwire::storage
