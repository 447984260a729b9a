// Symbolic links planted in a volume are never followed (issue 13, case 2):
// a channel, a lock file or a whole subdirectory pointing outside the volume
// is refused with a message naming it, and what it points to is untouched.

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/file_ops.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

DirVolumeOptions Options(const std::string& node) {
  DirVolumeOptions o;
  o.node = node;
  return o;
}

constexpr char kChannel[] = "s-0123456789abcdef0123456789abcdef-c2s";

class DirVolumeLinksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(victim());
    for (const char* name : {"keep-a", "keep-b"}) {
      std::ofstream(victim() + "/" + name) << "precious";
    }
    auto v = OpenDirVolume(root(), Options("node-a"));
    ASSERT_THAT(v, IsOk());
    volume_ = *std::move(v);
  }
  std::string root() const { return dir_.path() + "/vol"; }
  std::string victim() const { return dir_.path() + "/victim"; }
  std::vector<std::string> VictimFiles() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(victim()))
      names.push_back(e.path().filename());
    return names;
  }

  ScratchDir dir_;
  std::unique_ptr<Volume> volume_;
};

TEST_F(DirVolumeLinksTest, ChannelThatIsALinkIsRefusedAndItsTargetKept) {
  fs::create_directory_symlink(victim(), root() + "/channels/" + kChannel);
  EXPECT_THAT(volume_->OpenWriter(kChannel, WriterOptions{}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("symbolic link")));
  EXPECT_THAT(
      volume_->RemoveChannel(kChannel),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kChannel)));
  EXPECT_THAT(VictimFiles(), UnorderedElementsAre("keep-a", "keep-b"));
}

TEST_F(DirVolumeLinksTest, LockFileThatIsALinkIsNeverOpened) {
  const std::string target = victim() + "/keep-a";
  fs::create_directory(root() + "/channels/" + kChannel);
  fs::create_symlink(target, root() + "/channels/" + kChannel + "/LOCK");
  EXPECT_THAT(volume_->RemoveChannel(kChannel),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  std::ifstream in(target);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
  EXPECT_THAT(VictimFiles(), UnorderedElementsAre("keep-a", "keep-b"));
}

TEST_F(DirVolumeLinksTest, HeartbeatsDirectoryThatIsALinkIsRefused) {
  fs::remove_all(root() + "/heartbeats");
  fs::create_directory_symlink(victim(), root() + "/heartbeats");
  EXPECT_THAT(
      volume_->PublishHeartbeat("node-a.1.2", "x"),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("heartbeats")));
  EXPECT_THAT(volume_->ListHeartbeats(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(VictimFiles(), UnorderedElementsAre("keep-a", "keep-b"));
}

TEST_F(DirVolumeLinksTest, TheVolumeItselfMayBeReachedThroughALink) {
  const std::string alias = dir_.path() + "/alias";
  fs::create_directory_symlink(root(), alias);
  auto v = OpenDirVolume(alias, Options("node-b"));
  ASSERT_THAT(v, IsOk());
  ASSERT_THAT((*v)->PublishHeartbeat("node-b.1.2", "x"), IsOk());
  auto listing = volume_->ListHeartbeats();
  ASSERT_THAT(listing, IsOk());
  EXPECT_EQ(listing->heartbeats.size(), 1u);
}

TEST(ConfinedFileOps, PathsOutsideTheRootAreRefused) {
  ScratchDir dir;
  auto ops = FileOps::Confined({dir.path()});
  ASSERT_THAT(ops, IsOk());
  EXPECT_THAT((*ops)->Open("/etc/passwd", O_RDONLY, 0),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("outside the volume")));
  EXPECT_THAT((*ops)->Open(dir.path() + "/../x", O_RDONLY, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT((*ops)->MakeDir(dir.path() + "/sub"), IsOk());
  auto fd = (*ops)->Open(dir.path() + "/sub/f", O_WRONLY | O_CREAT, 0644);
  ASSERT_THAT(fd, IsOk());
  ASSERT_THAT((*ops)->Close(*fd), IsOk());
  EXPECT_THAT((*ops)->Rename(dir.path() + "/sub/f", dir.path() + "/g"), IsOk());
  auto names = (*ops)->ListDir(dir.path());
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(*names, UnorderedElementsAre("sub", "g"));
  EXPECT_THAT((*ops)->Unlink(dir.path() + "/g"), IsOk());
  EXPECT_THAT((*ops)->RemoveDir(dir.path() + "/sub"), IsOk());
}

}  // namespace
}  // namespace diskwire::storage
