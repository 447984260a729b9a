// How a reset crosses: an application's abortive close, on the healthy path
// and over the volume; a reset the network gives, with and without a diskwire
// peer. Two engines joined by loopback TCP and a directory volume
// (core/engine_test_fixture.h).

#include <errno.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "core/engine_test_fixture.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// SO_LINGER {1, 0} then close: the peer sees a reset, not an end of file,
// on the healthy path (the kernel's, not held back by a lingering
// duplicate) and on the storage path (a reset record).
void ExpectAbortiveCloseIsAReset(EngineImpl* a, int client, EngineImpl* b,
                                 int server) {
  const linger abortive{1, 0};
  ASSERT_EQ(
      a->SetSockOpt(client, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive))
          .value,
      0);
  ASSERT_EQ(a->Close(client).value, 0);
  char buf[16];
  iovec iov{buf, sizeof(buf)};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  SysResult r = b->RecvMsg(server, &m, 0);
  EXPECT_FALSE(r.ok()) << "read " << r.value << " bytes: an end of file";
  EXPECT_EQ(r.error, ECONNRESET);
}

TEST_F(EngineTest, AbortiveCloseOnTheHealthyPathIsAReset) {
  Connect();
  ExpectAbortiveCloseIsAReset(a_.get(), client_, b_.get(), server_);
}

TEST_F(EngineTest, AbortiveCloseOnTheStoragePathIsAReset) {
  Connect(Mode::kStorage);
  ExpectAbortiveCloseIsAReset(a_.get(), client_, b_.get(), server_);
}

// A send that the kernel fails with a reset (a middlebox's, or the peer
// host's after a reboot of its network) moves the session to the volume, and
// both streams go on byte-exact.
TEST_F(EngineTest, AResetOnSendFailsOverAndBothStreamsGoOn) {
  base_config_.resume = false;  // the loopback is fine: it would come back
  Connect();
  os_.FailOn(FakeOsCalls::Call::kSendMsg, client_, ECONNRESET, /*times=*/1);
  RunBothWays(1 << 20, 0, /*cut_on_server=*/false, /*force=*/false);
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kStorage);
  EXPECT_EQ(b_->SessionFor(server_)->state.load(), SessionState::kStorage);
  EXPECT_GT(b_->SessionFor(server_)->bytes_in_storage.load(), 0u);
}

// The same reset with no diskwire at the other end: nobody could carry the
// stream, so the application gets the reset as TCP gave it, and nothing is
// written to the volume.
TEST_F(EngineTest, AResetWithNoDiskwirePeerReachesTheApplication) {
  a_ = MakeEngine("a", Mode::kFailover);
  ConnectClient();  // the server runs without diskwire
  os_.FailOn(FakeOsCalls::Call::kSendMsg, client_, ECONNRESET, /*times=*/1);
  char byte = 'x';
  EXPECT_EQ(Send(a_.get(), client_, &byte, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  const std::vector<std::string> channels = ChannelsOnVolume();
  EXPECT_TRUE(channels.empty()) << channels[0];
}

// The server's application resets the connection (SO_LINGER {1, 0}): the
// reset is its word, not the network's. The client's application gets
// ECONNRESET as TCP gives it, and nothing fails over: the server's engine
// says in its heartbeat that it let the session go before the reset leaves.
TEST_F(EngineTest, AnApplicationsResetIsNotTakenForAFailure) {
  Connect();
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  // Until the server's heartbeat lists the session: before, the client would
  // have failed over to it.
  WaitUntilHeartbeatLists(*b_, a_.get(), client_);
  const linger abort_on_close{1, 0};
  ASSERT_TRUE(b_->SetSockOpt(server_, SOL_SOCKET, SO_LINGER, &abort_on_close,
                             sizeof(abort_on_close))
                  .ok());
  ASSERT_EQ(b_->Close(server_).value, 0);
  EXPECT_EQ(Recv(a_.get(), client_, &byte, 1), -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_NE(a_->SessionFor(client_)->state.load(), SessionState::kStorage);
  const std::vector<std::string> channels = ChannelsOnVolume();
  EXPECT_TRUE(channels.empty()) << "failed over: " << channels[0];
}

}  // namespace
}  // namespace diskwire
