// Two engines in one process, joined by a real loopback TCP connection and
// sharing a real directory volume: the application side is played by calling
// the Engine API as the shim does.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "core/engine_impl.h"
#include "core/engine_test_fixture.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"

namespace diskwire {
namespace {

TEST_F(EngineTest, AnnouncementOfAnUnknownSessionIsAnsweredWithAReset) {
  Connect();  // b_ runs, with a heartbeat and an inbox
  FailoverMessage m;
  m.session = SessionId{0x1234, 0x5678};
  m.sender_role = Role::kClient;
  m.failover_offset = 10;
  m.delivered = 20;
  m.from_process = a_->process_id();
  m.episode = 1;
  m.to_claim = 4242;
  auto volume = storage::OpenDirVolume(dir_, {});
  ASSERT_THAT(volume, IsOk());
  ASSERT_THAT(
      (*volume)->PostToInbox(b_->process_id(), "fo-unknown", EncodeFailover(m)),
      IsOk());
  auto reader = (*volume)->OpenReader(
      ChannelName(m.session, SendDirection(Role::kServer), 1,
                  IncarnationTag(b_->process_id(), m.to_claim)),
      0);
  ASSERT_THAT(reader, IsOk());
  std::vector<storage::Record> records;
  const auto deadline = absl::Now() + absl::Seconds(10);
  while (records.empty() && absl::Now() < deadline) {
    ASSERT_THAT((*reader)->ReadAvailable(&records, 1 << 20), IsOk());
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(records.size(), 1u) << "no answer within 10 s";
  EXPECT_EQ(records[0].header.type, storage::RecordType::kRst);
  EXPECT_EQ(records[0].header.stream_offset, 20u);
}

TEST_F(EngineTest, HealthyPathWritesNoChannel) {
  Connect();
  const std::string data = RandomBytes(1 << 20, 7);
  std::atomic<size_t> progress{0};
  std::string got;
  std::thread rx([&] { got = RecvAll(b_.get(), server_, &progress); });
  SendAll(a_.get(), client_, data, 8);
  rx.join();
  EXPECT_TRUE(got == data);
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  const std::vector<std::string> channels = ChannelsOnVolume();
  EXPECT_TRUE(channels.empty()) << "the healthy path wrote a channel";
}

// Sends of several iovecs (an empty one among them) and MSG_WAITALL receives
// into two: the ring must hold exactly what each send took, which the failover
// in the middle replays.
TEST_F(EngineTest, ScatteredSendsAndWaitAllReceivesSurviveAFailover) {
  Connect();
  const std::string data = RandomBytes(3 << 20, 11);
  std::atomic<size_t> received{0};
  std::string got;
  std::thread rx([&] {
    char head[1000], tail[3096];
    while (got.size() < data.size()) {
      iovec iov[2] = {{head, sizeof(head)}, {tail, sizeof(tail)}};
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = 2;
      SysResult r = b_->RecvMsg(server_, &m, MSG_WAITALL);
      ASSERT_TRUE(r.ok()) << strerror(r.error);
      ASSERT_GT(r.value, 0) << "end of file after " << got.size();
      // A blocking MSG_WAITALL read fills the whole buffer (the stream is a
      // multiple of it).
      ASSERT_EQ(r.value, static_cast<ssize_t>(sizeof(head) + sizeof(tail)));
      got.append(head, sizeof(head));
      got.append(tail, sizeof(tail));
      received.store(got.size());
    }
  });
  std::mt19937 rng(12);
  size_t off = 0;
  bool cut = false;
  while (off < data.size()) {
    const size_t a = std::min<size_t>(data.size() - off, rng() % 9000);
    const size_t b = std::min<size_t>(data.size() - off - a, 1 + rng() % 30000);
    iovec iov[3] = {{const_cast<char*>(data.data() + off), a},
                    {nullptr, 0},
                    {const_cast<char*>(data.data() + off + a), b}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 3;
    SysResult r = a_->SendMsg(client_, &m, 0);
    ASSERT_TRUE(r.ok()) << strerror(r.error);
    ASSERT_EQ(r.value, static_cast<ssize_t>(a + b)) << "a blocking send";
    off += a + b;
    if (!cut && off > data.size() / 2) {
      ForceFailover(a_.get(), client_);
      cut = true;
    }
  }
  rx.join();
  EXPECT_TRUE(got == data) << "received " << got.size() << " of "
                           << data.size();
  EXPECT_GE(a_->SessionFor(client_)->episode, 1u);
}

TEST_F(EngineTest, ClientFailoverMidStreamDeliversBothWaysExactlyOnce) {
  Connect();
  RunBothWays(8 << 20, 2 << 20, /*cut_on_server=*/false);
  // Both moved to the volume (and may be back on the network by now).
  EXPECT_GE(a_->SessionFor(client_)->episode, 1u);
  EXPECT_GE(b_->SessionFor(server_)->episode, 1u);
}

TEST_F(EngineTest, ServerFailoverMidStreamDeliversBothWaysExactlyOnce) {
  Connect();
  RunBothWays(8 << 20, 3 << 20, /*cut_on_server=*/true);
}

TEST_F(EngineTest, FailoverBeforeTheFirstByte) {
  Connect();
  RunBothWays(2 << 20, 0, /*cut_on_server=*/false);
}

// A connection that fails at once, before the peer's next heartbeat (due 50 ms
// after its accept) names it: both roles fail over at the first attempt.
TEST_F(EngineTest, FailoverBeforeThePeersHeartbeatNamesTheSession) {
  for (const bool cut_on_server : {false, true}) {
    SCOPED_TRACE(cut_on_server ? "the server fails first" : "the client");
    Connect();  // the engines' first heartbeats are out of the way
    const int first_client = client_, first_server = server_;
    ConnectEngines();
    EXPECT_TRUE(cut_on_server ? b_->FailOver(server_, "cut at once")
                              : a_->FailOver(client_, "cut at once"));
    RunBothWays(1 << 20, 0, cut_on_server, /*force=*/false);
    EXPECT_GE(a_->SessionFor(client_)->episode, 1u);
    EXPECT_GE(b_->SessionFor(server_)->episode, 1u);
    for (int fd : {first_client, client_}) a_->Close(fd);
    for (int fd : {first_server, server_}) b_->Close(fd);
    a_.reset();
    b_.reset();
  }
}

TEST_F(EngineTest, StorageModeCarriesEveryByteOverTheVolume) {
  Connect(Mode::kStorage);
  RunBothWays(4 << 20, 0, /*cut_on_server=*/false);
  Session* s = a_->SessionFor(client_);
  EXPECT_EQ(s->state.load(), SessionState::kStorage);
  // Every byte went through the writer thread to the volume.
  EXPECT_GE(s->leg.out->appended_offset(), 4u << 20);
  EXPECT_GT(s->leg.out->stats().appends, 0u);
}

TEST_F(EngineTest, ResumesOnTheNetworkWhenThePathWorks) {
  Connect();
  ForceFailover(a_.get(), client_);
  WaitBothDirect(a_.get(), client_, b_.get(), server_);
  // The application's fds are TCP sockets again, with the original addresses.
  EXPECT_EQ(KernelDomain(client_), AF_INET);
  EXPECT_EQ(KernelDomain(server_), AF_INET);
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  ASSERT_EQ(
      b_->GetSockName(server_, reinterpret_cast<sockaddr*>(&peer), &len).value,
      0);
  EXPECT_EQ(ntohs(peer.sin_port), port_);
  EXPECT_EQ(a_->SessionFor(client_)->resumes.load(), 1u);
  RunBothWays(4 << 20, 1 << 20, /*cut_on_server=*/false);
}

// A peer with a large replay cap may have more in flight than the default
// reassembly window: a slow reader must not end the session with EIO.
TEST_F(EngineTest, LargeReplayCapWithASlowReaderOverStorage) {
  base_config_.replay_cap = uint64_t{64} << 20;
  Connect(Mode::kStorage);
  const std::string data = RandomBytes(40 << 20, 11);
  std::thread tx([&] { SendAll(a_.get(), client_, data, 12); });
  // The reader starts late: the writer's records pile up on the volume.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (a_->SessionFor(client_)->leg.out == nullptr ||
         a_->SessionFor(client_)->leg.out->appended_offset() < (24u << 20)) {
    ASSERT_LT(absl::Now(), deadline);
    absl::SleepFor(absl::Milliseconds(5));  // polling a byte count
  }
  std::atomic<size_t> progress{0};
  std::string got = RecvAll(b_.get(), server_, &progress);
  tx.join();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

// Property: whatever the stream sizes, write patterns, side and moment of the
// failover, both directions arrive exactly once and in order. The network keeps
// working after the failover (a wrong detection), so bytes reach the receiver
// by both paths: the hardest case for the reassembly. DW_PROPERTY_RUNS=N runs
// more seeds.
TEST_F(EngineTest, RandomFailoverMomentsDeliverExactlyOnce) {
  const char* runs_env = getenv("DW_PROPERTY_RUNS");
  const int runs = runs_env != nullptr ? atoi(runs_env) : 25;
  const char* first_env =
      getenv("DW_PROPERTY_FIRST");  // replays one failing seed
  const int first = first_env != nullptr ? atoi(first_env) : 1;
  for (int seed = first; seed < first + runs; ++seed) {
    std::mt19937 rng(seed);
    const size_t bytes = 1 + rng() % (3 << 20);
    const size_t cut_after = rng() % bytes;
    const bool on_server = rng() % 2;
    SCOPED_TRACE(absl::StrCat("seed ", seed, ": ", bytes,
                              " bytes, failover after ", cut_after, " on the ",
                              on_server ? "server" : "client"));
    Connect();
    RunBothWays(bytes, cut_after, on_server);
    a_.reset();
    b_.reset();
    close(client_);
    close(server_);
    if (HasFailure()) break;
  }
}

// Property: any number of episodes — failover, resume, failover again — at
// random moments on either side, some resumes breaking half-way at a random
// step of the handshake on a random side, deliver both directions exactly
// once and in order. DW_PROPERTY_RUNS=N runs more seeds.
TEST_F(EngineTest, RandomEpisodesAndBrokenResumesDeliverExactlyOnce) {
  const char* runs_env = getenv("DW_PROPERTY_RUNS");
  const int runs = runs_env != nullptr ? atoi(runs_env) : 8;
  const char* first_env = getenv("DW_PROPERTY_FIRST");
  const int first = first_env != nullptr ? atoi(first_env) : 1;
  for (int seed = first; seed < first + runs; ++seed) {
    std::mt19937 rng(seed);
    const size_t bytes = (4 << 20) + rng() % (8 << 20);
    const int cuts = 1 + rng() % 3;
    // One resume in two breaks: this side stops reading the link in this
    // phase (as if the network died there) until the attempt times out.
    std::atomic<int> fault_role{-1}, fault_phase{-1};
    auto fault = [&](Role role, ResumeLink::Phase phase) {
      if (static_cast<int>(role) != fault_role.load() ||
          static_cast<int>(phase) != fault_phase.load())
        return false;
      fault_role = -1;  // once
      return true;
    };
    SCOPED_TRACE(absl::StrCat("seed ", seed, ": ", bytes, " bytes, ", cuts,
                              " failovers"));
    a_ = MakeEngine("a", Mode::kFailover);
    b_ = MakeEngine("b", Mode::kFailover);
    a_->SetLinkFaultForTest(fault);
    b_->SetLinkFaultForTest(fault);
    ConnectEngines();
    const std::string up = RandomBytes(bytes, seed),
                      down = RandomBytes(bytes, ~seed);
    std::atomic<size_t> up_progress{0}, down_progress{0};
    std::string got_up, got_down;
    std::thread t1([&] { SendAll(a_.get(), client_, up, seed + 1); });
    std::thread t2([&] { SendAll(b_.get(), server_, down, seed + 2); });
    std::thread t3([&] { got_up = RecvAll(b_.get(), server_, &up_progress); });
    std::thread t4(
        [&] { got_down = RecvAll(a_.get(), client_, &down_progress); });
    for (int i = 0; i < cuts; ++i) {
      const size_t at = bytes * (i + 1) / (cuts + 2) + rng() % (bytes / 8);
      absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (up_progress.load() < at && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(1));  // polling a byte count
      }
      if (rng() % 2) {
        fault_phase = static_cast<int>(rng() % 4);
        fault_role =
            static_cast<int>(rng() % 2 ? Role::kClient : Role::kServer);
      }
      EngineImpl* e = rng() % 2 ? a_.get() : b_.get();
      const int fd = e == a_.get() ? client_ : server_;
      if (e->SessionFor(fd)->state.load() != SessionState::kDirect) break;
      if (!e->FailOver(fd, "forced by the test")) break;  // finished meanwhile
      // Back on the network before the next one (or the streams ended).
      deadline = absl::Now() + absl::Seconds(20);
      while (absl::Now() < deadline &&
             (a_->SessionFor(client_)->state.load() != SessionState::kDirect ||
              b_->SessionFor(server_)->state.load() != SessionState::kDirect) &&
             a_->SessionFor(client_)->state.load() != SessionState::kClosed) {
        absl::SleepFor(absl::Milliseconds(2));  // polling a state
      }
    }
    t1.join();
    t2.join();
    t3.join();
    t4.join();
    EXPECT_EQ(got_up.size(), up.size());
    EXPECT_TRUE(got_up == up)
        << "client→server stream differs at " << FirstDifference(got_up, up);
    EXPECT_EQ(got_down.size(), down.size());
    EXPECT_TRUE(got_down == down) << "server→client stream differs at "
                                  << FirstDifference(got_down, down);
    a_.reset();
    b_.reset();
    close(client_);
    close(server_);
    if (HasFailure()) break;
  }
}

TEST_F(EngineTest, WarnsWhenTheStorageLagBoundIsBroken) {
  base_config_.max_lag_ms = 0;  // every record is late
  base_config_.log_sink = LogSink::kFile;
  base_config_.log_path = dir_ + "-log";
  Connect(Mode::kStorage);
  RunBothWays(64 << 10, 0, /*cut_on_server=*/false);
  a_.reset();
  b_.reset();
  std::ifstream log(base_config_.log_path);
  std::string text((std::istreambuf_iterator<char>(log)),
                   std::istreambuf_iterator<char>());
  EXPECT_THAT(text, testing::HasSubstr("above DISKWIRE_MAX_LAG_MS=0"));
  std::filesystem::remove(base_config_.log_path);
}

TEST_F(EngineTest, ChannelsOfEndedSessionsLeaveTheVolume) {
  Connect(Mode::kStorage);
  RunBothWays(256 << 10, 0, /*cut_on_server=*/false);
  ASSERT_EQ(a_->Close(client_).value, 0);
  ASSERT_EQ(b_->Close(server_).value, 0);
  auto volume = storage::OpenDirVolume(dir_, {});
  ASSERT_THAT(volume, IsOk());
  auto channels = (*volume)->ListChannels();
  ASSERT_THAT(channels, IsOk());
  EXPECT_EQ(channels->size(), 2u) << "both directions went over the volume";
  // Released 5 s after the end, removed once the other side let go too.
  const auto deadline = absl::Now() + absl::Seconds(20);
  while (!channels->empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    channels = (*volume)->ListChannels();
    ASSERT_THAT(channels, IsOk());
  }
  EXPECT_TRUE(channels->empty()) << (*channels)[0];
}

// The server reads its last bytes long after they arrived, then closes at
// once. Its engine must still tell the client that they were read: without
// that ack the client's session waits for it for ever, its channel on the
// volume.
TEST_F(EngineTest, BytesReadJustBeforeTheCloseAreAcknowledged) {
  Connect(Mode::kStorage);
  const std::string data = RandomBytes(1000, 5);
  ASSERT_EQ(Send(a_.get(), client_, data.data(), data.size()), 1000);
  Session* sent = a_->SessionFor(client_);
  ASSERT_NE(sent, nullptr);
  ASSERT_EQ(a_->Close(client_).value, 0);
  pollfd p{server_, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10'000), 1);
  // The bytes and the FIN wait in the pair, unread, through a few of the
  // server engine's acks and sweeps.
  absl::SleepFor(absl::Milliseconds(700));
  std::string got(1000, '\0');
  size_t n = 0;
  while (n < got.size()) {
    const ssize_t r = Recv(b_.get(), server_, got.data() + n, got.size() - n);
    ASSERT_GT(r, 0) << strerror(errno);
    n += r;
  }
  EXPECT_EQ(got, data);
  char more;
  ASSERT_EQ(Recv(b_.get(), server_, &more, 1), 0);
  ASSERT_EQ(b_->Close(server_).value, 0);
  // Ended sessions stay 5 s before they are freed: `sent` is valid till then.
  const absl::Time deadline = absl::Now() + absl::Seconds(4);
  while (sent->state.load() != SessionState::kClosed &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(sent->state.load(), SessionState::kClosed)
      << "the client never learnt that its last bytes were read";
}

// Stories told with a scripted OsCalls: the connection fails the way a
// network fails it, not by a forced failover.

// The peer goes silent: what the client sent is never acknowledged. The
// engine's probe sees it within the detection bound, without any error from
// the socket, and the session goes on over the volume.
TEST_F(EngineTest, AConnectionWhoseAcksStopFailsOverWithinTheBound) {
  base_config_.resume = false;
  Connect();
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  const absl::Duration took = TimeSilentCut(absl::Seconds(10));
  ASSERT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kStorage);
  // detect_ms is 500; the probe runs every detect_ms / 25.
  EXPECT_LT(took, absl::Milliseconds(1500)) << took;
  EXPECT_EQ(os_.Count(FakeOsCalls::Call::kSendMsg, client_), 1)
      << "no socket error took part";
  RunBothWays(256 << 10, 0, /*cut_on_server=*/false, /*force=*/false);
}

// A side whose peer's channel turns out corrupt cannot go on: it ends the
// session and tells the peer with a reset, which ends there at once (not a
// peer timeout later, nor never: the corrupt side's process lives on).
TEST_F(EngineTest, CorruptPeerChannelEndsBothSidesWithAReset) {
  base_config_.peer_timeout_ms = 60'000;
  Connect(Mode::kStorage);
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Send(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(Recv(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  const SessionId id = a_->SessionFor(client_)->id;
  const std::string s2c =
      ChannelName(id, SendDirection(Role::kServer), 1,
                  IncarnationTag(b_->process_id(),
                                 b_->SessionFor(server_)->claim_ns.load()));
  std::ofstream(absl::StrCat(dir_, "/channels/", s2c, "/0000000000000001.seg"),
                std::ios::app)
      << "not a record";
  iovec iov{&byte, 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  SysResult r = SysResult::Fail(EAGAIN);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!r.ok() && r.error == EAGAIN && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // polling a non-blocking read
    r = b_->RecvMsg(server_, &m, MSG_DONTWAIT);
  }
  EXPECT_FALSE(r.ok()) << "read " << r.value;
  EXPECT_EQ(r.error, ECONNRESET) << strerror(r.error);
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kClosed);
  // Counted for `diskwire status` in a's heartbeat.
  auto volume = storage::OpenDirVolume(dir_, {});
  ASSERT_THAT(volume, IsOk());
  uint64_t rejected = 0;
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (rejected == 0 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));  // the next heartbeat
    auto listing = (*volume)->ListHeartbeats();
    ASSERT_THAT(listing, IsOk());
    for (const storage::Heartbeat& hb : listing->heartbeats) {
      auto report = DecodeProcessReport(hb.payload);
      if (report.ok() && hb.process_id == a_->process_id())
        rejected = report->rejected_records;
    }
  }
  EXPECT_EQ(rejected, 1u);
}

// The peer removed its channel under this side's reader: it moved to a new
// episode (a resume that broke, a new failover), whose announcement names
// the next channel, and what this side had not read comes again there. Not
// corruption: the session waits for the next channel (before, it ended at
// once with EIO and a reset, seen once in RandomEpisodesAndBrokenResumes),
// for at most the peer timeout.
TEST_F(EngineTest, APeerChannelRemovedUnderItsReaderIsNotCorruption) {
  base_config_.peer_timeout_ms = 2'000;
  Connect(Mode::kStorage);
  char byte = 'x';
  ASSERT_EQ(Send(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(Recv(a_.get(), client_, &byte, 1), 1);
  const SessionId id = a_->SessionFor(client_)->id;
  const std::string s2c =
      ChannelName(id, SendDirection(Role::kServer), 1,
                  IncarnationTag(b_->process_id(),
                                 b_->SessionFor(server_)->claim_ns.load()));
  std::filesystem::remove_all(absl::StrCat(dir_, "/channels/", s2c));
  absl::SleepFor(absl::Milliseconds(1000));
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kStorage);
  // No next channel came: the wait ends with the peer timeout.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (a_->SessionFor(client_)->state.load() != SessionState::kClosed &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kClosed);
}

// Issue 13, case 1: a connection with the four-tuple of an earlier one (a
// fixed source port) whose channels are still on the volume, one of them
// held by a live writer (a second tenant, a stuck process). The new
// connection gets channels of its own incarnation and never reads the old
// bytes (before: its client could not move to storage, and its server
// delivered the stale bytes).
TEST_F(EngineTest, ALaterConnectionNeverReadsAnEarlierOnesChannel) {
  a_ = MakeEngine("a", Mode::kStorage);
  b_ = MakeEngine("b", Mode::kStorage);
  client_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(client_, reinterpret_cast<sockaddr*>(&local), sizeof(local)),
            0);
  socklen_t len = sizeof(local);
  getsockname(client_, reinterpret_cast<sockaddr*>(&local), &len);
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  server.sin_port = htons(port_);
  Endpoints e;
  std::memcpy(&e.local, &local, sizeof(local));
  std::memcpy(&e.remote, &server, sizeof(server));
  auto id = SessionIdFor(e, Role::kClient);
  ASSERT_THAT(id, IsOk());
  auto volume = storage::OpenDirVolume(dir_, {});
  ASSERT_THAT(volume, IsOk());
  std::vector<std::unique_ptr<storage::ChannelWriter>> stale;
  for (const std::string& name :
       {ChannelName(*id, SendDirection(Role::kClient), 1),
        ChannelName(*id, SendDirection(Role::kClient), 1,
                    IncarnationTag(a_->process_id(), 1234))}) {
    auto w = (*volume)->OpenWriter(name, storage::WriterOptions{});
    ASSERT_THAT(w, IsOk());
    storage::Record r;
    r.header.session_id = *id;
    r.header.direction = SendDirection(Role::kClient);
    r.payload = "STALE bytes of an earlier connection";
    ASSERT_THAT((*w)->Append({r}), IsOk());
    stale.push_back(std::move(*w));  // its lock stays held
  }
  ASSERT_TRUE(
      a_->Connect(client_, reinterpret_cast<sockaddr*>(&server), sizeof(server))
          .ok());
  server_ = accept(listener_, nullptr, nullptr);
  ASSERT_GE(server_, 0);
  b_->OnAccept(listener_, server_);
  const std::string fresh = "FRESH bytes of this connection";
  ASSERT_EQ(Send(a_.get(), client_, fresh.data(), fresh.size()),
            static_cast<ssize_t>(fresh.size()));
  ASSERT_EQ(a_->Shutdown(client_, SHUT_WR).value, 0);
  std::atomic<size_t> progress{0};
  EXPECT_EQ(RecvAll(b_.get(), server_, &progress), fresh);
}

// The receiver's kernel had acknowledged a whole large receive queue that its
// application had not read when the sender failed over: the sender writes to
// the volume from beyond it, further ahead of the receiver's delivered offset
// than twice the replay cap. The reassembly must hold those bytes while the
// old socket drains (before: "ends beyond the window", the session ended with
// EIO).
TEST_F(EngineTest, FailoverBeyondALargeUnreadReceiveQueue) {
  Connect();
  const int big = 32 << 20;
  if (setsockopt(server_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0) {
    GTEST_SKIP() << "SKIPPED: SO_RCVBUFFORCE needs CAP_NET_ADMIN (run as root)";
  }
  const std::string before = RandomBytes(12 << 20, 5);
  const std::string after = RandomBytes(1 << 20, 6);
  // Into the receiver's kernel queue, unread: the sender's kernel sees it
  // all acknowledged.
  size_t off = 0;
  while (off < before.size()) {
    ssize_t n = Send(a_.get(), client_, before.data() + off,
                     std::min<size_t>(65536, before.size() - off));
    ASSERT_GT(n, 0) << strerror(errno);
    off += static_cast<size_t>(n);
  }
  ForceFailover(a_.get(), client_);
  std::atomic<size_t> progress{0};
  std::string got;
  std::thread rx([&] { got = RecvAll(b_.get(), server_, &progress); });
  SendAll(a_.get(), client_, after, 7);
  rx.join();
  EXPECT_EQ(got.size(), before.size() + after.size());
  EXPECT_TRUE(got == before + after)
      << "differs at " << FirstDifference(got, before + after);
}

}  // namespace
}  // namespace diskwire
