// The directory backend's VolumeWatcher: inotify for local writes, a poll
// timer for network filesystems.

#include "storage/dir_watcher.h"

#include <poll.h>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Changes = VolumeWatcher::Changes;

class DirWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(volume_, OpenDirVolume(dir_.path(), {}));
  }
  std::unique_ptr<VolumeWatcher> Watcher(WatcherOptions::Mode mode) {
    WatcherOptions o;
    o.mode = mode;
    o.poll_interval = absl::Milliseconds(1);
    return *volume_->NewWatcher(o);
  }
  // Whether the watcher's fd is readable right now (events are queued by
  // the kernel before the writing syscall returns).
  static bool Readable(const VolumeWatcher& w) {
    pollfd p = {w.fd(), POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }
  void Append(const std::string& channel, uint64_t offset) {
    auto& w = writers_[channel];
    if (!w) w = *volume_->OpenWriter(channel, {});
    ASSERT_THAT(w->Append({DataRecord(offset, "x")}), IsOk());
  }

  ScratchDir dir_;
  std::unique_ptr<Volume> volume_;
  std::map<std::string, std::unique_ptr<ChannelWriter>> writers_;
};

TEST_F(DirWatcherTest, ReportsAppendsToWatchedChannelsOnly) {
  Append("a", 0);
  Append("b", 0);
  auto w = Watcher(WatcherOptions::Mode::kInotify);
  EXPECT_EQ(w->poll_interval(), absl::InfiniteDuration());
  ASSERT_THAT(w->Watch("a"), IsOk());
  EXPECT_FALSE(Readable(*w));
  Append("b", 1);
  Append("a", 1);
  Append("a", 2);
  ASSERT_TRUE(Readable(*w));
  Changes c;
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_THAT(c.channels, ElementsAre("a"));
  EXPECT_FALSE(c.everything);
  EXPECT_FALSE(Readable(*w));
  ASSERT_THAT(w->Unwatch("a"), IsOk());
  Append("a", 3);
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_THAT(c.channels, IsEmpty());
}

TEST_F(DirWatcherTest, ChannelCreatedAfterWatchIsPickedUp) {
  auto w = Watcher(WatcherOptions::Mode::kInotify);
  ASSERT_THAT(w->Watch("later"), IsOk());
  Append("later", 0);
  Changes c;
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_THAT(c.channels, ElementsAre("later"));
  Append("later", 1);  // now watched directly
  ASSERT_TRUE(Readable(*w));
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_THAT(c.channels, ElementsAre("later"));
}

TEST_F(DirWatcherTest, ReportsInboxPosts) {
  auto w = Watcher(WatcherOptions::Mode::kInotify);
  ASSERT_THAT(w->WatchInbox("me.1.2"), IsOk());
  ASSERT_THAT(volume_->PostToInbox("me.1.2", "failover", "F"), IsOk());
  ASSERT_TRUE(Readable(*w));
  Changes c;
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_TRUE(c.inbox);
}

TEST_F(DirWatcherTest, PollModeReportsEverythingOncePerInterval) {
  auto w = Watcher(WatcherOptions::Mode::kPoll);
  EXPECT_EQ(w->poll_interval(), absl::Milliseconds(1));
  ASSERT_THAT(w->Watch("a"), IsOk());
  Changes c;
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_TRUE(c.everything);
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_FALSE(c.everything);  // the interval has not passed again
}

TEST_F(DirWatcherTest, AutoModeOnLocalDiskNeedsNoPolling) {
  ASSERT_OK_AND_ASSIGN(bool network, IsNetworkFilesystem(dir_.path()));
  auto w = Watcher(WatcherOptions::Mode::kAuto);
  EXPECT_EQ(w->poll_interval() == absl::InfiniteDuration(), !network);
  EXPECT_FALSE(IsNetworkFilesystem("/dev/shm").value_or(true));
  EXPECT_THAT(IsNetworkFilesystem(dir_.path() + "/missing"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(DirWatcherTest, InvalidChannelNameIsRejected) {
  auto w = Watcher(WatcherOptions::Mode::kInotify);
  EXPECT_THAT(w->Watch("../x"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace diskwire::storage
