// Opening volumes, heartbeats and inboxes of the directory backend.

#include "storage/dir_volume.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/record_codec.h"
#include "storage/test_util.h"
#include "storage/volume_contract.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class DirVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override { volume_ = Open(""); }
  std::unique_ptr<Volume> Open(std::string key) {
    DirVolumeOptions o;
    o.node = "node-a";
    o.mac_key = std::move(key);
    o.file_ops = &faults_;
    absl::StatusOr<std::unique_ptr<Volume>> v = OpenDirVolume(root(), o);
    EXPECT_THAT(v, IsOk());
    return v.ok() ? *std::move(v) : nullptr;
  }
  std::string root() const { return dir_.path() + "/vol"; }
  std::string HeartbeatPath(const std::string& id) const {
    return root() + "/heartbeats/" + id + ".hb";
  }

  ScratchDir dir_;
  FaultInjectingFileOps faults_{FileOps::Default()};
  std::unique_ptr<Volume> volume_;
};

TEST_F(DirVolumeTest, CreatesLayoutAndReopens) {
  EXPECT_TRUE(std::filesystem::exists(root() + "/VOLUME"));
  EXPECT_TRUE(std::filesystem::is_directory(root() + "/channels"));
  EXPECT_NE(Open(""), nullptr);
}

TEST_F(DirVolumeTest, ConcurrentCreatorsOfAFreshVolumeAllSucceed) {
  // Two hosts' processes often open a fresh volume at the same moment: each may
  // see the other's marker appear between its own read and its listing of the
  // directory.
  for (int round = 0; round < 20; ++round) {
    const std::string fresh = dir_.path() + "/fresh" + std::to_string(round);
    std::vector<absl::Status> results(4);
    std::vector<std::thread> openers;
    for (auto& result : results) {
      openers.emplace_back(
          [&fresh, &result] { result = OpenDirVolume(fresh, {}).status(); });
    }
    for (auto& t : openers) t.join();
    for (const auto& result : results)
      EXPECT_THAT(result, IsOk()) << "round " << round;
  }
}

TEST_F(DirVolumeTest, RefusesNonEmptyForeignDirectory) {
  WriteFileBytes(dir_.path() + "/precious.txt", "data");
  DirVolumeOptions o;
  EXPECT_THAT(OpenDirVolume(dir_.path(), o),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("not a diskwire volume")));
}

TEST_F(DirVolumeTest, RefusesOtherFormatVersion) {
  WriteFileBytes(root() + "/VOLUME", "diskwire volume\nformat 2\n");
  EXPECT_THAT(OpenDirVolume(root(), {}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("format 2")));
  WriteFileBytes(root() + "/VOLUME", "something else");
  EXPECT_THAT(OpenDirVolume(root(), {}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("marker")));
}

TEST_F(DirVolumeTest, RejectsKeyOfWrongSize) {
  DirVolumeOptions o;
  o.mac_key = "short";
  EXPECT_THAT(OpenDirVolume(root(), o),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("32 bytes")));
}

TEST_F(DirVolumeTest, LoadsKeyFilesRawOrHex) {
  const std::string raw(kMacKeySize, '\x07');
  WriteFileBytes(dir_.path() + "/raw", raw);
  EXPECT_EQ(*LoadMacKeyFile(dir_.path() + "/raw"), raw);
  WriteFileBytes(dir_.path() + "/hex", std::string(64, '0') + "\n");
  EXPECT_EQ(*LoadMacKeyFile(dir_.path() + "/hex"), std::string(32, '\0'));
  WriteFileBytes(dir_.path() + "/bad", "not a key");
  EXPECT_THAT(LoadMacKeyFile(dir_.path() + "/bad"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("/bad")));
  EXPECT_THAT(LoadMacKeyFile(dir_.path() + "/missing"),
              StatusIs(StatusCode::kNotFound));
}

TEST_F(DirVolumeTest, ChannelStatFollowsTrimsAndRemoval) {
  ExpectChannelStatFollowsTrimsAndRemoval(*volume_, 64 << 10);
}

TEST_F(DirVolumeTest, CopiedHeartbeatsKeepTheirPublisher) {
  ExpectCopiedHeartbeatsKeepTheirPublisher(*volume_);
}

TEST_F(DirVolumeTest, InboxMessagesStayUntilDelivered) {
  auto other = Open("");
  ExpectInboxMessagesStayUntilDelivered(*volume_, *other);
}

TEST_F(DirVolumeTest, HeartbeatIsReplacedAndListed) {
  ASSERT_THAT(volume_->PublishHeartbeat("node-a.42.1000", "v1"), IsOk());
  ASSERT_THAT(volume_->PublishHeartbeat("node-a.42.1000", "v2"), IsOk());
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, volume_->ListHeartbeats());
  EXPECT_THAT(l.problems, IsEmpty());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  const Heartbeat& hb = l.heartbeats[0];
  EXPECT_EQ(hb.process_id, "node-a.42.1000");
  EXPECT_EQ(hb.node, "node-a");
  EXPECT_EQ(hb.pid, getpid());
  EXPECT_EQ(hb.payload, "v2");
  EXPECT_EQ(hb.sequence, 2u);
  EXPECT_GT(hb.time_ns, 1'600'000'000'000'000'000u);
  ASSERT_THAT(volume_->RemoveHeartbeat("node-a.42.1000"), IsOk());
  EXPECT_THAT(volume_->ListHeartbeats()->heartbeats, IsEmpty());
}

TEST_F(DirVolumeTest, CorruptAndForeignHeartbeatsAreReportedNotFatal) {
  ASSERT_THAT(volume_->PublishHeartbeat("good", ""), IsOk());
  ASSERT_THAT(volume_->PublishHeartbeat("flipped", "payload"), IsOk());
  std::string bytes = ReadFileBytes(HeartbeatPath("flipped"));
  bytes[bytes.size() - 2] ^= 1;
  WriteFileBytes(HeartbeatPath("flipped"), bytes);
  WriteFileBytes(root() + "/heartbeats/README", "hello");
  WriteFileBytes(HeartbeatPath("empty"), "");
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, volume_->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  EXPECT_EQ(l.heartbeats[0].process_id, "good");
  ASSERT_EQ(l.problems.size(), 3u);
  EXPECT_THAT(l.problems[0], HasSubstr("README: foreign file"));
  EXPECT_THAT(l.problems[1], HasSubstr("empty.hb: truncated"));
  EXPECT_THAT(l.problems[2], HasSubstr("flipped.hb: record checksum"));
}

TEST_F(DirVolumeTest, FifoPlantedAsHeartbeatDoesNotBlock) {
  ASSERT_EQ(mkfifo(HeartbeatPath("fifo").c_str(), 0644), 0);
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, volume_->ListHeartbeats());
  EXPECT_THAT(l.heartbeats, IsEmpty());
  EXPECT_THAT(l.problems, ElementsAre(HasSubstr("fifo.hb")));
}

TEST_F(DirVolumeTest, RenamedHeartbeatIsDetected) {
  ASSERT_THAT(volume_->PublishHeartbeat("alice", ""), IsOk());
  std::filesystem::rename(HeartbeatPath("alice"), HeartbeatPath("mallory"));
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, volume_->ListHeartbeats());
  EXPECT_THAT(l.heartbeats, IsEmpty());
  EXPECT_THAT(l.problems, ElementsAre(HasSubstr("malformed heartbeat")));
}

TEST_F(DirVolumeTest, HeartbeatWriteFailureLeavesOldOne) {
  ASSERT_THAT(volume_->PublishHeartbeat("p", "old"), IsOk());
  faults_.FailNext(FileOp::kWrite, ENOSPC);
  EXPECT_THAT(volume_->PublishHeartbeat("p", "new"),
              StatusIs(StatusCode::kResourceExhausted));
  faults_.FailNext(FileOp::kRename, EIO);
  EXPECT_THAT(volume_->PublishHeartbeat("p", "new"),
              StatusIs(StatusCode::kUnavailable));
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, volume_->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  EXPECT_EQ(l.heartbeats[0].payload, "old");
  EXPECT_THAT(l.problems, IsEmpty());
  // No temp files left behind.
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(root() + "/heartbeats"),
                    std::filesystem::directory_iterator()),
      1);
}

TEST_F(DirVolumeTest, InboxDeliversOnceInNameOrder) {
  ASSERT_THAT(volume_->PostToInbox("peer.1.2", "b-second", "2"), IsOk());
  ASSERT_THAT(volume_->PostToInbox("peer.1.2", "a-first", "1"), IsOk());
  EXPECT_THAT(volume_->PostToInbox("peer.1.2", "a-first", "again"),
              StatusIs(StatusCode::kAlreadyExists, HasSubstr("pending")));
  ASSERT_OK_AND_ASSIGN(InboxListing l, volume_->TakeInbox("peer.1.2"));
  ASSERT_EQ(l.messages.size(), 2u);
  EXPECT_EQ(l.messages[0].name, "a-first");
  EXPECT_EQ(l.messages[0].payload, "1");
  EXPECT_EQ(l.messages[1].payload, "2");
  EXPECT_THAT(volume_->TakeInbox("peer.1.2")->messages, IsEmpty());
  EXPECT_THAT(volume_->TakeInbox("nobody")->messages, IsEmpty());
}

TEST_F(DirVolumeTest, InboxWorksWithoutHardLinks) {
  faults_.FailNext(FileOp::kLink, EPERM, /*times=*/2);
  ASSERT_THAT(volume_->PostToInbox("p", "m", "1"), IsOk());
  EXPECT_THAT(volume_->PostToInbox("p", "m", "2"),
              StatusIs(StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(InboxListing l, volume_->TakeInbox("p"));
  ASSERT_EQ(l.messages.size(), 1u);
  EXPECT_EQ(l.messages[0].payload, "1");
  EXPECT_EQ(
      std::distance(std::filesystem::directory_iterator(root() + "/inbox/p"),
                    std::filesystem::directory_iterator()),
      0);  // no temp file left
}

TEST_F(DirVolumeTest, CorruptInboxMessageIsReportedOnceAndSetAside) {
  ASSERT_THAT(volume_->PostToInbox("me", "msg", "hello"), IsOk());
  WriteFileBytes(root() + "/inbox/me/junk", "junk");
  ASSERT_OK_AND_ASSIGN(InboxListing l, volume_->TakeInbox("me"));
  ASSERT_EQ(l.messages.size(), 1u);
  EXPECT_THAT(l.problems, ElementsAre(HasSubstr("inbox/me/junk")));
  ASSERT_OK_AND_ASSIGN(InboxListing again, volume_->TakeInbox("me"));
  EXPECT_THAT(again.problems, IsEmpty());
  EXPECT_TRUE(std::filesystem::exists(root() + "/inbox/me/.bad-junk"));
}

TEST_F(DirVolumeTest, AuthenticatedVolumeRejectsForgedMessages) {
  auto keyed = Open(std::string(kMacKeySize, 'k'));
  ASSERT_THAT(volume_->PostToInbox("me", "forged", "no mac"), IsOk());
  ASSERT_THAT(keyed->PostToInbox("me", "real", "mac"), IsOk());
  ASSERT_OK_AND_ASSIGN(InboxListing l, keyed->TakeInbox("me"));
  ASSERT_EQ(l.messages.size(), 1u);
  EXPECT_EQ(l.messages[0].name, "real");
  EXPECT_THAT(l.problems, ElementsAre(HasSubstr("no MAC")));
}

TEST_F(DirVolumeTest, InvalidIdsAndNamesAreRejected) {
  EXPECT_THAT(volume_->PublishHeartbeat("../escape", ""),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(
      volume_->PostToInbox("p", "UPPER", ""),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("message name")));
  EXPECT_THAT(volume_->TakeInbox(""), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(volume_->PostToInbox("p", "big", std::string(2 << 20, 'x')),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("too big")));
}

// Records which fds are open as the observer hears of them.
class OpenFds : public FdObserver {
 public:
  void Opened(int fd) override { EXPECT_TRUE(open_.insert(fd).second) << fd; }
  void Closing(int fd) override { EXPECT_EQ(open_.erase(fd), 1u) << fd; }
  const std::set<int>& open() const { return open_; }

 private:
  std::set<int> open_;
};

std::string FdTarget(int fd) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd),
                                       ec)
      .string();
}

// Every fd an observed volume holds (a writer's lock and segment, a reader's
// segment) is told to its observer while it is open, and its closing before
// it closes; transient ones (the marker, directory creation) open and close.
TEST_F(DirVolumeTest, AnObservedVolumeTellsOfEveryFdItHolds) {
  OpenFds fds;
  DirVolumeOptions o;
  o.node = "node-a";
  o.fd_observer = &fds;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Volume> v, OpenDirVolume(root(), o));
  EXPECT_THAT(fds.open(), IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChannelWriter> w,
                       v->OpenWriter("ch", {}));
  ASSERT_THAT(w->Append({DataRecord(0, "hello")}), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChannelReader> r,
                       v->OpenReader("ch", 0));
  std::vector<Record> got;
  ASSERT_THAT(r->ReadAvailable(&got, 1 << 20), IsOk());
  ASSERT_EQ(got.size(), 1u);
  std::vector<std::string> held;
  for (int fd : fds.open()) {
    const std::string target = FdTarget(fd);
    EXPECT_EQ(target.rfind(root() + "/channels/ch/", 0), 0u) << target;
    held.push_back(target.substr(target.rfind('/') + 1));
  }
  std::sort(held.begin(), held.end());
  EXPECT_THAT(held, ElementsAre("0000000000000001.seg", "0000000000000001.seg",
                                "LOCK"));
  r.reset();
  w.reset();
  EXPECT_THAT(fds.open(), IsEmpty());
}

}  // namespace
}  // namespace diskwire::storage
