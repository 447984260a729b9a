#include "core/storage_path.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/fake_os_calls.h"
#include "core/writer.h"
#include "core/writer_fake_sink.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Records what the storage path asks of its engine.
class RecordingHost final : public StoragePath::Host {
 public:
  void LoopMod(int fd, Session*, uint32_t events) override {
    loop_events[fd] = events;
  }
  void LoopDel(int fd) override { loop_events.erase(fd); }
  void ReleasePrivate(int fd) override { released.push_back(fd); }
  void ForgetPeerChannel(Session*) override { ++forgotten; }
  void EndSession(Session* s, int error, const std::string& why) override {
    ended.push_back({error, why});
    s->state.store(SessionState::kClosed);
  }

  std::map<int, uint32_t> loop_events;
  std::vector<int> released;
  int forgotten = 0;
  std::vector<std::pair<int, std::string>> ended;
};

// A peer channel that yields the records a test queues.
class ScriptedReader final : public storage::ChannelReader {
 public:
  absl::StatusOr<size_t> ReadAvailable(std::vector<storage::Record>* out,
                                       size_t) override {
    const size_t n = queue.size();
    for (storage::Record& r : queue) out->push_back(std::move(r));
    queue.clear();
    return n;
  }
  void SkipTo(uint64_t) override {}

  std::vector<storage::Record> queue;
};

// One session in STORAGE with a real socket pair, a reassembly and a writer
// queue over a fake sink: the application's end is app_.
class StoragePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    app_ = sv[1];
    s_.id = {1, 2};
    s_.label = "test";
    s_.state.store(SessionState::kStorage);
    s_.leg.eng_end = sv[0];
    s_.leg.app_end = dup(sv[1]);
    s_.leg.reassembly = std::make_unique<Reassembly>(0);
    s_.leg.out = writer_.AddChannel(s_.id, storage::kServerToClient, &sink_);
  }
  void TearDown() override {
    writer_.RemoveChannel(s_.leg.out);
    close(s_.leg.eng_end);
    close(s_.leg.app_end);
    if (app_ >= 0) close(app_);
  }
  std::string ReadApp(size_t n) {
    std::string out(n, '\0');
    ssize_t got = read(app_, out.data(), n);
    out.resize(got < 0 ? 0 : got);
    return out;
  }

  // A DATA record of the peer's channel (the session is the client's).
  storage::Record PeerData(uint64_t offset, std::string bytes) {
    storage::Record r;
    r.header.type = storage::RecordType::kData;
    r.header.session_id = s_.id;
    r.header.direction = SendDirection(Role::kServer);
    r.header.stream_offset = offset;
    r.payload = std::move(bytes);
    return r;
  }
  // Fills the pair towards the application; returns how many bytes it took.
  size_t FillPair() {
    const std::string filler(4096, 'f');
    size_t n = 0;
    ssize_t w;
    while ((w = write(s_.leg.eng_end, filler.data(), filler.size())) > 0)
      n += w;
    return n;
  }

  FakeOsCalls os_;
  Config config_;
  Logger log_{config_};
  TcpProbe probe_{&os_};
  std::atomic<uint64_t> rejected_{0};
  RecordingHost host_;
  StoragePath path_{&host_,  &os_, RealClock::Get(), &log_,
                    &probe_, 1000, &rejected_};
  FakeSink sink_;
  Writer writer_{RealClock::Get(), WriterOptions{}};
  Session s_{RealClock::Get(), 1000, 1 << 20};
  int app_ = -1;
};

TEST_F(StoragePathTest, ThePeersBytesReachTheApplicationInStreamOrder) {
  ASSERT_TRUE(s_.leg.reassembly->Offer(5, "world").ok());
  path_.PumpVolumeToApp(&s_);
  EXPECT_EQ(s_.delivered, 0u) << "nothing is contiguous yet";
  ASSERT_TRUE(s_.leg.reassembly->Offer(0, "hello").ok());
  path_.PumpVolumeToApp(&s_);
  EXPECT_EQ(s_.delivered, 10u);
  EXPECT_EQ(ReadApp(64), "helloworld");
}

TEST_F(StoragePathTest, WhatWaitsUnreadInThePairIsNotConsumed) {
  ASSERT_TRUE(s_.leg.reassembly->Offer(0, "0123456789").ok());
  path_.PumpVolumeToApp(&s_);
  EXPECT_EQ(path_.ConsumedOffset(&s_), 0u);
  EXPECT_EQ(ReadApp(4), "0123");
  EXPECT_EQ(path_.ConsumedOffset(&s_), 4u)
      << "the ack this side sends is what the application read";
}

TEST_F(StoragePathTest, ThePeersFinIsTheApplicationsEndOfFileOnceAllIsRead) {
  ASSERT_TRUE(s_.leg.reassembly->Offer(0, "last").ok());
  s_.leg.peer_fin = true;
  s_.leg.peer_fin_offset = 6;  // two bytes still to come
  path_.PumpVolumeToApp(&s_);
  EXPECT_FALSE(s_.leg.eof_delivered);
  ASSERT_TRUE(s_.leg.reassembly->Offer(4, "!!").ok());
  path_.PumpVolumeToApp(&s_);
  EXPECT_TRUE(s_.leg.eof_delivered);
  EXPECT_EQ(ReadApp(64), "last!!");
  EXPECT_EQ(ReadApp(64), "") << "end of file";
}

TEST_F(StoragePathTest, TheApplicationsBytesGoToTheWriterAndItsEndIsAFin) {
  const std::string sent = "request";
  ASSERT_EQ(write(app_, sent.data(), sent.size()),
            static_cast<ssize_t>(sent.size()));
  shutdown(app_, SHUT_WR);
  path_.PumpAppToVolume(&s_);
  {
    FutexLockHolder lock(&s_.send_mu);
    EXPECT_EQ(s_.ring.head(), sent.size());
  }
  EXPECT_EQ(s_.leg.next_to_volume, sent.size());
  EXPECT_TRUE(s_.leg.app_wrote_eof);
  EXPECT_TRUE(s_.leg.fin_sent);
  EXPECT_EQ(host_.loop_events[s_.leg.eng_end] & EPOLLIN, 0u)
      << "nothing more to read from the pair after its end";
}

TEST_F(StoragePathTest, ASessionFinishesOnlyWhenBothDirectionsDid) {
  s_.leg.fin_sent = true;
  s_.leg.peer_fin = true;
  s_.leg.eof_delivered = true;
  {
    absl::MutexLock lock(&s_.mu);
    s_.names = {app_};
  }
  path_.MaybeFinish(&s_);
  EXPECT_TRUE(host_.ended.empty()) << "the application still holds it";
  {
    absl::MutexLock lock(&s_.mu);
    s_.names.clear();
  }
  {
    FutexLockHolder lock(&s_.send_mu);
    s_.ring.Append("x");
  }
  path_.MaybeFinish(&s_);
  EXPECT_TRUE(host_.ended.empty()) << "the peer has not acknowledged a byte";
  s_.peer_ack = 1;
  path_.MaybeFinish(&s_);
  ASSERT_EQ(host_.ended.size(), 1u);
  EXPECT_EQ(host_.ended[0].first, 0);
}

TEST_F(StoragePathTest, AResetEndsTheSessionWithTheError) {
  path_.ResetOverStorage(&s_, ECONNRESET, "told so");
  EXPECT_TRUE(s_.leg.fin_sent) << "no FIN after a reset";
  ASSERT_EQ(host_.ended.size(), 1u);
  EXPECT_EQ(host_.ended[0].first, ECONNRESET);
  EXPECT_NE(host_.ended[0].second.find("reset sent to the peer"),
            std::string::npos);
}

// The peer writes its ring's worth ahead of what it knows delivered, and the
// old socket may hold a whole receive queue more: records beyond what the
// reassembly holds wait until the application reads. They reset the session
// before (a paused reader's failover ended in EIO).
TEST_F(StoragePathTest, RecordsBeyondTheWindowWaitForTheApplicationToRead) {
  s_.role = Role::kClient;
  s_.leg.reassembly = std::make_unique<Reassembly>(0, /*window=*/16);
  auto reader = std::make_unique<ScriptedReader>();
  ScriptedReader* peer = reader.get();
  s_.leg.reader = std::move(reader);
  const size_t filler = FillPair();  // the application pauses
  peer->queue.push_back(PeerData(0, "0123456789"));
  peer->queue.push_back(PeerData(10, "abcdefghij"));
  path_.ReadPeerChannel(&s_);
  EXPECT_TRUE(host_.ended.empty()) << host_.ended[0].second;
  EXPECT_TRUE(s_.leg.read_more) << "the loop must come back for them";
  std::string got;
  while (got.size() < filler) got += ReadApp(filler - got.size());
  for (int pass = 0; pass < 3 && s_.delivered < 20; ++pass) {
    path_.ReadPeerChannel(&s_);  // the loop's next passes
  }
  EXPECT_TRUE(host_.ended.empty());
  EXPECT_EQ(ReadApp(64), "0123456789abcdefghij");
}

// What nothing can come before (no old socket, nothing ready below it) is a
// broken peer: the session resets rather than wait for ever.
TEST_F(StoragePathTest, APieceBeyondTheWindowWithNothingBeforeItResets) {
  s_.role = Role::kClient;
  s_.leg.reassembly = std::make_unique<Reassembly>(0, /*window=*/16);
  auto reader = std::make_unique<ScriptedReader>();
  reader->queue.push_back(PeerData(20, "0123456789"));
  s_.leg.reader = std::move(reader);
  path_.ReadPeerChannel(&s_);
  ASSERT_EQ(host_.ended.size(), 1u);
  EXPECT_EQ(host_.ended[0].first, EIO);
}

// The old socket's receive queue may hold more than the reassembly: what does
// not fit stays in the kernel until the application reads. The old socket
// used to be closed there, and the bytes it still held were lost.
TEST_F(StoragePathTest, TheOldSocketIsReadOnlyAsFarAsTheReassemblyHolds) {
  s_.leg.reassembly = std::make_unique<Reassembly>(0, /*window=*/16);
  int old[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, old), 0);
  const std::string stream = "0123456789abcdefghijklmnopqrstuv";  // 32 bytes
  ASSERT_EQ(write(old[1], stream.data(), stream.size()),
            static_cast<ssize_t>(stream.size()));
  s_.leg.old_sock = old[0];
  s_.leg.old_sock_open = true;
  const size_t filler = FillPair();  // the application pauses
  path_.DrainOldSocket(&s_);
  EXPECT_TRUE(s_.leg.old_sock_open) << "closed with bytes still in it";
  EXPECT_TRUE(s_.leg.read_more) << "the loop must come back for them";
  std::string got;
  while (got.size() < filler) got += ReadApp(filler - got.size());
  for (int pass = 0; pass < 4 && s_.delivered < stream.size(); ++pass) {
    path_.PumpVolumeToApp(&s_);
    path_.DrainOldSocket(&s_);
  }
  EXPECT_EQ(ReadApp(64), stream);
  if (s_.leg.old_sock_open) close(old[0]);
  close(old[1]);
}

}  // namespace
}  // namespace diskwire
