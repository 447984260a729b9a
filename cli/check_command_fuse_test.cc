// diskwire check on a FUSE mount (bindfs), a stand-in for a network
// filesystem: the filesystem is named with the mount options that cut its
// attribute cache, and the latency is measured through a second view of the
// same directory, where appends raise no inotify event. Skipped where bindfs
// or /dev/fuse is missing.

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_join.h"
#include "cli/check_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

class CheckFuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string& view : {a(), b()}) {
      std::filesystem::create_directories(src());
      std::filesystem::create_directories(view);
      const std::string cmd = "bindfs " + src() + " " + view + " 2>/dev/null";
      if (std::system(cmd.c_str()) != 0) {
        GTEST_SKIP() << "bindfs over /dev/fuse is not available here";
      }
      mounted_.push_back(view);
    }
  }
  void TearDown() override {
    for (const std::string& view : mounted_) {
      const std::string cmd = "fusermount -u " + view + " || umount " + view;
      EXPECT_EQ(std::system(cmd.c_str()), 0);
    }
  }
  std::string src() const { return dir_.path() + "/src"; }
  std::string a() const { return dir_.path() + "/a"; }
  std::string b() const { return dir_.path() + "/b"; }

  storage::ScratchDir dir_;
  std::vector<std::string> mounted_;
};

TEST_F(CheckFuseTest, NamesFuseAndMeasuresThroughAnotherView) {
  CheckOptions o;
  o.volume = a();
  o.reader_volume = b();
  o.samples = 20;
  std::vector<std::string> lines;
  for (const Finding& f : RunCheck(o)) lines.push_back(FormatFinding(f));
  const std::string all = absl::StrJoin(lines, "\n");
  EXPECT_THAT(lines, Contains(HasSubstr("warn: filesystem: FUSE, fuse mounted "
                                        "at " +
                                        a())))
      << all;
  EXPECT_THAT(
      lines,
      Contains(HasSubstr("mount with -o attribute-timeout=0,entry-timeout=0")));
  // Through the other view no inotify event arrives: found by polling.
  EXPECT_THAT(lines, Contains(HasSubstr("warn: change notification: the "
                                        "watcher fd never fired")))
      << all;
  EXPECT_THAT(lines, Contains(HasSubstr("ok: append->read latency over 20 "
                                        "appends")))
      << all;
  EXPECT_THAT(lines, Not(Contains(HasSubstr("FAIL"))));
  EXPECT_THAT(lines, Not(Contains(HasSubstr("this host's mount only"))));
  // Nothing left behind, even where channel removal trips over FUSE.
  EXPECT_TRUE(std::filesystem::is_empty(src() + "/channels")) << all;
}

}  // namespace
}  // namespace diskwire
