#include "storage/dir_prune.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>

#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"

namespace diskwire::storage {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class DirPruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-prune-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    auto v = OpenDirVolume(root_, {});
    ASSERT_THAT(v, IsOk());
    volume_ = std::move(*v);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void MakeChannel(const std::string& name) {
    auto w = volume_->OpenWriter(name, {});
    ASSERT_THAT(w, IsOk());
    Record r;
    r.header.type = RecordType::kFin;
    ASSERT_THAT((*w)->Append({r}), IsOk());
    ASSERT_THAT((*w)->Close(), IsOk());
  }

  PruneReport Prune(absl::Duration later) {
    PruneOptions o;
    o.stale_after_ms = 60'000;
    o.now_ns = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now() + later));
    o.channel_in_use = [](absl::string_view c) { return c == "in-use"; };
    auto r = PruneDirVolume(root_, *volume_, o);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? *r : PruneReport{};
  }

  std::string root_;
  std::unique_ptr<Volume> volume_;
};

TEST_F(DirPruneTest, KeepsWhatIsFreshAndRemovesWhatIsStale) {
  ASSERT_THAT(volume_->PublishHeartbeat("a.10.1", "x"), IsOk());
  ASSERT_THAT(volume_->PostToInbox("a.10.1", "msg", "hello"), IsOk());
  MakeChannel("old");
  MakeChannel("in-use");
  EXPECT_THAT(Prune(absl::ZeroDuration()).removed, IsEmpty());

  PruneReport r = Prune(absl::Minutes(2));
  EXPECT_THAT(r.removed, UnorderedElementsAre("heartbeat a.10.1",
                                              "inbox a.10.1", "channel old"));
  EXPECT_THAT(r.problems, IsEmpty());
  auto channels = volume_->ListChannels();
  ASSERT_THAT(channels, IsOk());
  EXPECT_THAT(*channels, UnorderedElementsAre("in-use"));
  auto hbs = volume_->ListHeartbeats();
  ASSERT_THAT(hbs, IsOk());
  EXPECT_THAT(hbs->heartbeats, IsEmpty());
  // Twice is harmless: what is gone is gone.
  EXPECT_THAT(Prune(absl::Minutes(2)).removed, IsEmpty());
}

TEST_F(DirPruneTest, LeavesAChannelItsWriterStillHolds) {
  auto w = volume_->OpenWriter("held", {});
  ASSERT_THAT(w, IsOk());
  PruneReport r = Prune(absl::Minutes(2));
  EXPECT_THAT(r.removed, IsEmpty());
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_THAT(r.problems[0], ::testing::HasSubstr("channel held"));
  auto channels = volume_->ListChannels();
  ASSERT_THAT(channels, IsOk());
  EXPECT_THAT(*channels, UnorderedElementsAre("held"));
}

}  // namespace
}  // namespace diskwire::storage
