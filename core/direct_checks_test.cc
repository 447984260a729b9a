// The loop's probe of healthy sessions (direct_checks.cc) against real
// loopback connections: what it must take for a failure, and what not.

#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Both sides close in order (the client shuts down writing, the server
// answers and closes), and the client's application holds its socket a while
// before it reads the end of file and closes: the kernel has moved the
// connection to TIME_WAIT, and the socket the application holds reads
// TCP_CLOSE. That is the end of the stream, not a failure: it must not fail
// over (to a peer whose heartbeat still lists the session), and the
// application reads the end of file, not a reset.
TEST_F(EngineTest, AnOrderlyEndTheApplicationHoldsIsNotAFailure) {
  Connect();
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(a_->Shutdown(client_, SHUT_WR).value, 0);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 0);
  WaitUntilHeartbeatLists(*b_, a_.get(), client_);
  ASSERT_EQ(Send(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(b_->Close(server_).value, 0);
  ASSERT_EQ(Recv(a_.get(), client_, &byte, 1), 1);
  // Many of the loop's probes (every DETECT_MS / 25 = 20 ms).
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  EXPECT_EQ(Recv(a_.get(), client_, &byte, 1), 0) << strerror(errno);
  const std::vector<std::string> channels = ChannelsOnVolume();
  EXPECT_TRUE(channels.empty()) << "failed over: " << channels[0];
}

}  // namespace
}  // namespace diskwire
