// `diskwire mirror` when one volume or both are LUNs (send and receive LUNs,
// claims 6 and 8): channels byte-exact across extents, trims and removals,
// a restart, heartbeats, inbox messages and the status, through the Volume
// interface.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "storage/lun_format.h"
#include "storage/lun_test_util.h"
#include "storage/mirror.h"
#include "storage/mirror_requests.h"
#include "storage/test_util.h"
#include "storage/volume_open.h"

namespace diskwire::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Kinds {
  bool source_lun;
  bool target_lun;
};

std::string KindsName(const ::testing::TestParamInfo<Kinds>& info) {
  return absl::StrCat(info.param.source_lun ? "Lun" : "Dir", "To",
                      info.param.target_lun ? "Lun" : "Dir");
}

class MirrorLunTest : public ::testing::TestWithParam<Kinds> {
 protected:
  void SetUp() override {
    from_ = Make(GetParam().source_lun, "from");
    to_ = Make(GetParam().target_lun, "to");
    source_ = OpenAs("source-node", from_);
    target_ = OpenAs("target-node", to_);
  }
  // A 64 MiB LUN image with 128 KiB extents, or a directory.
  std::string Make(bool lun, const std::string& name) {
    const std::string path = dir_.path() + "/" + name;
    if (!lun) return path;
    LunFormatRequest r;
    r.slots = 16;
    r.extent_bytes = 128 << 10;
    r.heartbeat_bytes = 16 << 10;
    r.outbox_cells = 8;
    EXPECT_THAT(MakeLunImage(path, 64 << 20, r), IsOk());
    return path;
  }
  static std::unique_ptr<Volume> OpenAs(const std::string& node,
                                        const std::string& path) {
    DirVolumeOptions o;
    o.node = node;
    absl::StatusOr<std::unique_ptr<Volume>> v = OpenVolume(path, o);
    EXPECT_THAT(v, IsOk());
    return v.ok() ? *std::move(v) : nullptr;
  }
  std::unique_ptr<Mirror> NewMirror() {
    MirrorOptions o;
    o.trim_check_interval = absl::ZeroDuration();
    o.segment_bytes = 128 << 10;  // the directory's, as the LUN's extents
    o.warn = [this](const std::string& line) { warnings_.push_back(line); };
    absl::StatusOr<std::unique_ptr<Mirror>> m = Mirror::Open(from_, to_, o);
    EXPECT_THAT(m, IsOk());
    return m.ok() ? *std::move(m) : nullptr;
  }
  // Appends `bytes` of a pattern in records of up to 20000 bytes.
  void Write(ChannelWriter& w, uint64_t bytes, uint64_t* offset,
             std::string* sent) {
    const uint64_t end = *offset + bytes;
    for (int i = 0; *offset < end; ++i) {
      std::string p(std::min<uint64_t>(1 + (i * 7919) % 20000, end - *offset),
                    static_cast<char>('a' + (*offset + i) % 26));
      ASSERT_THAT(w.Append({DataRecord(*offset, p)}), IsOk());
      *offset += p.size();
      *sent += p;
    }
  }
  // The target's stream of `channel` from `from` (the source's trim point).
  std::string TargetStream(const std::string& channel, uint64_t from = 0) {
    std::string got;
    absl::StatusOr<std::unique_ptr<ChannelReader>> r =
        target_->OpenReader(channel, from);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return got;
    std::vector<Record> records;
    while (true) {
      records.clear();
      absl::StatusOr<size_t> n = (*r)->ReadAvailable(&records, 1 << 20);
      EXPECT_THAT(n, IsOk());
      if (!n.ok() || *n == 0) return got;
      for (const Record& rec : records) {
        if (rec.header.stream_offset + rec.payload.size() <= from) continue;
        EXPECT_EQ(rec.header.stream_offset, from + got.size());
        got += rec.payload;
      }
    }
  }

  ScratchDir dir_;
  std::string from_, to_;
  std::unique_ptr<Volume> source_, target_;
  std::vector<std::string> warnings_;
};

TEST_P(MirrorLunTest, ChannelsCrossByteExactAndAfterARestartGoOn) {
  ASSERT_OK_AND_ASSIGN(auto writer, source_->OpenWriter("s-1.c2s", {}));
  uint64_t off = 0;
  std::string sent;
  Write(*writer, 300 << 10, &off, &sent);  // about three extents
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  EXPECT_TRUE(TargetStream("s-1.c2s") == sent) << "the stream differs";

  // Killed and started again: it resumes after the target's last record.
  mirror.reset();
  Write(*writer, 200 << 10, &off, &sent);
  mirror = NewMirror();
  ASSERT_OK_AND_ASSIGN(PassResult copied, mirror->CopyAll());
  EXPECT_LT(copied.bytes, 250u << 10) << "only what was new is copied";
  const std::string got = TargetStream("s-1.c2s");
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent) << "lost or duplicated across the restart";
  EXPECT_THAT(mirror->channel_errors(), IsEmpty());
}

TEST_P(MirrorLunTest, SourceTrimsRemovalsAndRecreationsReachTheTarget) {
  WriterOptions extents;  // a directory's segments as small as the extents
  extents.segment_bytes = 128 << 10;
  ASSERT_OK_AND_ASSIGN(auto writer, source_->OpenWriter("a", extents));
  ASSERT_OK_AND_ASSIGN(auto gone, source_->OpenWriter("gone", extents));
  uint64_t off = 0, other = 0;
  std::string sent, unused;
  Write(*writer, 600 << 10, &off, &sent);
  Write(*gone, 1000, &other, &unused);
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  ASSERT_THAT(*target_->ListChannels(), ElementsAre("a", "gone"));

  ASSERT_THAT(writer->TrimBelow(off - 1), IsOk());
  ASSERT_OK_AND_ASSIGN(ChannelStat source_stat, source_->StatChannel("a"));
  ASSERT_GT(source_stat.trimmed_below, 256u << 10);
  ASSERT_THAT(gone->Close(), IsOk());
  ASSERT_THAT(source_->RemoveChannel("gone"), IsOk());
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  ASSERT_OK_AND_ASSIGN(ChannelStat target_stat, target_->StatChannel("a"));
  EXPECT_GT(target_stat.trimmed_below, 0u) << "the target was not trimmed";
  EXPECT_LE(target_stat.trimmed_below, source_stat.trimmed_below);
  EXPECT_TRUE(TargetStream("a", source_stat.trimmed_below) ==
              sent.substr(source_stat.trimmed_below));
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, target_->ListChannels());
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("gone")));

  // Removed and written again under its name: copied afresh.
  ASSERT_THAT(writer->Close(), IsOk());
  ASSERT_THAT(source_->RemoveChannel("a"), IsOk());
  ASSERT_OK_AND_ASSIGN(writer, source_->OpenWriter("a", extents));
  ASSERT_THAT(writer->Append({DataRecord(0, "new life")}), IsOk());
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  EXPECT_EQ(TargetStream("a"), "new life");
}

TEST_P(MirrorLunTest, HeartbeatsAndInboxMessagesCrossOnce) {
  ASSERT_THAT(source_->PublishHeartbeat("host-a.1.1", "report"), IsOk());
  ASSERT_THAT(source_->PostToInbox("host-b.2.2", "failover-1", "hello"),
              IsOk());
  ASSERT_THAT(source_->PostToInbox("host-b.2.2", "failover-2", "again"),
              IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_OK_AND_ASSIGN(PassResult first, mirror->CopyAll());
  EXPECT_EQ(first.mailbox_files, 3u);
  ASSERT_OK_AND_ASSIGN(HeartbeatListing hb, target_->ListHeartbeats());
  ASSERT_EQ(hb.heartbeats.size(), 1u);
  EXPECT_EQ(hb.heartbeats[0].process_id, "host-a.1.1");
  EXPECT_EQ(hb.heartbeats[0].node, "source-node") << "the publisher's, kept";
  EXPECT_EQ(hb.heartbeats[0].pid, getpid());
  EXPECT_EQ(hb.heartbeats[0].payload, "report");
  ASSERT_OK_AND_ASSIGN(InboxListing in, target_->TakeInbox("host-b.2.2"));
  ASSERT_EQ(in.messages.size(), 2u);
  EXPECT_EQ(in.messages[0].name, "failover-1");
  EXPECT_EQ(in.messages[0].payload, "hello");

  // Nothing twice, also after a restart; a new message crosses.
  mirror.reset();
  mirror = NewMirror();
  ASSERT_THAT(source_->PostToInbox("host-b.2.2", "failover-3", "three"),
              IsOk());
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  ASSERT_OK_AND_ASSIGN(in, target_->TakeInbox("host-b.2.2"));
  ASSERT_EQ(in.messages.size(), 1u);
  EXPECT_EQ(in.messages[0].name, "failover-3");

  // A heartbeat gone from the source goes from the target.
  ASSERT_THAT(source_->RemoveHeartbeat("host-a.1.1"), IsOk());
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  ASSERT_OK_AND_ASSIGN(hb, target_->ListHeartbeats());
  EXPECT_THAT(hb.heartbeats, IsEmpty());
}

TEST_P(MirrorLunTest, TheStatusIsOnTheTarget) {
  ASSERT_OK_AND_ASSIGN(auto writer, source_->OpenWriter("a", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "x")}), IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  for (int i = 0; i < 3; ++i) ASSERT_THAT(mirror->WriteStatusFile(), IsOk());
  const std::string status =
      GetParam().target_lun
          ? ReadMirrorStatusRecord(*target_, "default").value_or("")
          : ReadFileBytes(to_ + "/mirror/default.status");
  EXPECT_THAT(status, HasSubstr("mirror default\n"));
  EXPECT_THAT(status, HasSubstr("\nrecords 1\n"));
  // The status channel is the mirror's own: no pass removes it.
  ASSERT_THAT(mirror->CopyAll(), IsOk());
  if (GetParam().target_lun) {
    EXPECT_THAT(ReadMirrorStatusRecord(*target_, "default"), IsOk());
  }
}

TEST_P(MirrorLunTest, CopyRequestsAreAnsweredOnAnySource) {
  ASSERT_OK_AND_ASSIGN(auto writer, source_->OpenWriter("a", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "on request")}), IsOk());
  ASSERT_THAT(source_->PostToInbox("host-b.2.2", "m", "x"), IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  std::thread serving([&] {
    EXPECT_THAT(mirror->ServeRequests(absl::Milliseconds(5)), IsOk());
  });
  absl::StatusOr<std::string> answer =
      RequestMirrorCopy(from_, "default", "r1", absl::Seconds(20), "");
  ASSERT_THAT(answer, IsOk());
  EXPECT_THAT(*answer, HasSubstr("records 1\n"));
  EXPECT_THAT(*answer, HasSubstr("files 1\n"));
  EXPECT_EQ(TargetStream("a"), "on request");
  // The request itself was not moved to the target as a message.
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> inboxes,
                       target_->ListInboxes());
  for (const std::string& id : inboxes) {
    ASSERT_OK_AND_ASSIGN(InboxListing in, target_->TakeInbox(id));
    for (const InboxMessage& m : in.messages) {
      EXPECT_EQ(id, "host-b.2.2") << m.name;
    }
  }
  // A second request gets its own answer.
  answer = RequestMirrorCopy(from_, "default", "r2", absl::Seconds(20), "");
  ASSERT_THAT(answer, IsOk());
  EXPECT_THAT(*answer, HasSubstr("records 0\n"));
  mirror->Stop();
  serving.join();
  // Nobody serving: the requester gives up with a clear error.
  EXPECT_THAT(
      RequestMirrorCopy(from_, "default", "r3", absl::Milliseconds(200), ""),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               HasSubstr("no mirror answered request r3")));
}

INSTANTIATE_TEST_SUITE_P(Volumes, MirrorLunTest,
                         ::testing::Values(Kinds{false, true},
                                           Kinds{true, false},
                                           Kinds{true, true}),
                         KindsName);

}  // namespace
}  // namespace diskwire::storage
