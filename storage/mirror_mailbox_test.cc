// Heartbeats, inbox messages and copy requests through storage/mirror.

#include <thread>

#include "gmock/gmock.h"
#include "storage/mirror_test_fixture.h"

namespace diskwire::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class MirrorMailboxTest : public MirrorTest {
 protected:
  std::vector<std::string> TakeTarget(const std::string& id) {
    InboxListing l = *target_->TakeInbox(id);
    std::vector<std::string> got;
    for (const InboxMessage& m : l.messages) {
      got.push_back(m.name + "=" + m.payload);
    }
    return got;
  }
  std::string InboxPath(const std::string& root, const std::string& id,
                        const std::string& name) {
    return root + "/inbox/" + id + "/" + name;
  }
};

TEST_F(MirrorMailboxTest, HeartbeatsAreCopiedVerbatimReplacedAndRemoved) {
  ASSERT_THAT(source_->PublishHeartbeat("p1", "alive"), IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  HeartbeatListing src = *source_->ListHeartbeats();
  HeartbeatListing dst = *target_->ListHeartbeats();
  ASSERT_EQ(dst.heartbeats.size(), 1u);
  EXPECT_EQ(dst.heartbeats[0].node, "source-node");  // the publisher's
  EXPECT_EQ(dst.heartbeats[0].pid, src.heartbeats[0].pid);
  EXPECT_EQ(dst.heartbeats[0].time_ns, src.heartbeats[0].time_ns);

  ASSERT_THAT(source_->PublishHeartbeat("p1", "again"), IsOk());
  ASSERT_OK_AND_ASSIGN(PassResult pass, mirror->CopyPass());
  EXPECT_EQ(pass.mailbox_files, 1u);
  dst = *target_->ListHeartbeats();
  EXPECT_EQ(dst.heartbeats[0].payload, "again");
  EXPECT_EQ(dst.heartbeats[0].sequence, 2u);
  ASSERT_OK_AND_ASSIGN(pass, mirror->CopyPass());
  EXPECT_EQ(pass.mailbox_files, 0u);  // unchanged: not rewritten

  ASSERT_THAT(source_->RemoveHeartbeat("p1"), IsOk());
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  EXPECT_THAT(target_->ListHeartbeats()->heartbeats, IsEmpty());
}

TEST_F(MirrorMailboxTest, CorruptHeartbeatIsReportedNotCopied) {
  ASSERT_THAT(source_->PublishHeartbeat("p1", "alive"), IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  const std::string path = from() + "/heartbeats/p1.hb";
  std::string bytes = ReadFileBytes(path);
  bytes[bytes.size() - 1] ^= 1;
  WriteFileBytes(path, bytes);
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  EXPECT_THAT(mirror->mailbox_problems(),
              ElementsAre(HasSubstr(path + ": record checksum mismatch")));
  EXPECT_EQ(target_->ListHeartbeats()->heartbeats[0].payload, "alive");
}

TEST_F(MirrorMailboxTest, InboxMessagesMoveExactlyOnce) {
  ASSERT_THAT(source_->PostToInbox("peer.1", "failover-1", "F=100"), IsOk());
  ASSERT_THAT(source_->PostToInbox("peer.1", "failover-2", "F=200"), IsOk());
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_OK_AND_ASSIGN(PassResult pass, mirror->CopyPass());
  EXPECT_EQ(pass.mailbox_files, 2u);
  EXPECT_THAT(source_->TakeInbox("peer.1")->messages, IsEmpty());
  EXPECT_THAT(TakeTarget("peer.1"),
              ElementsAre("failover-1=F=100", "failover-2=F=200"));
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  EXPECT_THAT(TakeTarget("peer.1"), IsEmpty());
}

// A crash can leave any of the protocol's intermediate states; a restarted
// mirror finishes each one and delivers the message once.
TEST_F(MirrorMailboxTest, RestartFinishesEveryIntermediateState) {
  ASSERT_THAT(source_->PostToInbox("p", "claimed", "1"), IsOk());
  ASSERT_THAT(source_->PostToInbox("p", "staged", "2"), IsOk());
  ASSERT_THAT(source_->PostToInbox("p", "unclaimed", "3"), IsOk());
  ASSERT_THAT(source_->PostToInbox("p", "delivering", "4"), IsOk());
  const std::string src = from() + "/inbox/p/";
  const std::string dst = to() + "/inbox/p/";
  std::filesystem::create_directories(dst);
  // After step 1: claimed on the source only.
  std::filesystem::rename(src + "claimed", src + ".mirror-claimed");
  // After step 2: claimed on the source and staged on the target.
  std::filesystem::rename(src + "staged", src + ".mirror-staged");
  std::filesystem::copy_file(src + ".mirror-staged", dst + ".mirror-staged");
  // After step 3: staged on the target only.
  std::filesystem::rename(src + "delivering", dst + ".mirror-delivering");

  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_OK_AND_ASSIGN(PassResult pass, mirror->CopyPass());
  EXPECT_EQ(pass.mailbox_files, 4u);
  EXPECT_THAT(TakeTarget("p"), ElementsAre("claimed=1", "delivering=4",
                                           "staged=2", "unclaimed=3"));
  EXPECT_THAT(std::filesystem::is_empty(src), true);
  EXPECT_THAT(std::filesystem::is_empty(dst), true);
}

TEST_F(MirrorMailboxTest, CorruptInboxMessageIsSetAsideAndReported) {
  ASSERT_THAT(source_->PostToInbox("p", "m", "x"), IsOk());
  const std::string path = from() + "/inbox/p/m";
  std::string bytes = ReadFileBytes(path);
  bytes[66] ^= 1;  // the name in the payload
  WriteFileBytes(path, bytes);
  std::unique_ptr<Mirror> mirror = NewMirror();
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  ASSERT_THAT(mirror->CopyPass(), IsOk());
  EXPECT_THAT(mirror->mailbox_problems(), ElementsAre(HasSubstr(path)));
  EXPECT_TRUE(std::filesystem::exists(from() + "/inbox/p/.bad-m"));
  EXPECT_THAT(TakeTarget("p"), IsEmpty());
}

TEST_F(MirrorMailboxTest, CopyRequestIsAnsweredAfterTheCopy) {
  uint64_t offset = 0;
  WriteBatch("a", 3, &offset);
  std::unique_ptr<Mirror> mirror = NewMirror();
  std::thread serve([&] { EXPECT_THAT(mirror->ServeRequests(), IsOk()); });
  EXPECT_THAT(*target_->ListChannels(), IsEmpty());  // only on request
  std::filesystem::create_directories(from() + "/mirror/requests");
  WriteFileBytes(from() + "/mirror/requests/r1", "");
  const std::string done = from() + "/mirror/done/r1";
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!std::filesystem::exists(done) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // bounded wait for the thread
  }
  mirror->Stop();
  serve.join();
  ASSERT_TRUE(std::filesystem::exists(done));
  EXPECT_THAT(ReadFileBytes(done), HasSubstr("records 3\n"));
  EXPECT_FALSE(std::filesystem::exists(from() + "/mirror/requests/r1"));
  EXPECT_EQ(Target("a"), Source("a"));
}

}  // namespace
}  // namespace diskwire::storage
