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

// A burst that waited for its ACK a while, then a pause, then bytes again
// after a long silence: the stall rule wants bytes queued, and no ACK, for
// DETECT_MS each. The loop samples a quiet session only every 250 ms, so what
// it last saw was the queue of the earlier burst: the new bytes were taken for
// bytes queued since then, and a healthy connection failed over the moment it
// sent again (its peer had simply had nothing to acknowledge).
TEST_F(EngineTest, BytesAfterAPauseAreNotQueuedSinceTheBurstBefore) {
  detect_ms_ = 200;  // below the quiet sessions' 250 ms between samples
  base_config_.resume = false;
  Connect();
  Session* s = a_->SessionFor(client_);
  char byte = 'x';
  // The burst: its byte waits 50 ms for its ACK (the loop looks every 8 ms).
  const absl::Time burst = absl::Now();
  os_.Stall(client_);
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  absl::SleepFor(absl::Milliseconds(50));
  os_.Clear();  // acknowledged: the session turns quiet
  // The pause, shorter than the 250 ms between a quiet session's samples:
  // then a byte whose ACK has not come yet, after a silence over the bound.
  absl::SleepFor(burst + absl::Milliseconds(230) - absl::Now());
  os_.Stall(client_, absl::ToInt64Nanoseconds(absl::Now() - burst));
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  // Acknowledged well before it has been queued for the bound.
  absl::SleepFor(absl::Milliseconds(100));
  os_.Clear();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(s->state.load(), SessionState::kDirect)
      << s->detector.verdict().detail;
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
}

}  // namespace
}  // namespace diskwire
