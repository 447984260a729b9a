// The engine's loop wakes for what it has scheduled, not only at the end of
// its longest wait (a quarter of the heartbeat interval): two engines joined
// by loopback TCP and a directory volume (core/engine_test_fixture.h).

#include <sys/socket.h>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// A new session schedules a heartbeat 50 ms ahead, so that its peer finds it
// soon: over the volume, the first byte waits for it. The loop used to sleep
// through it until its longest wait ended, a quarter of the heartbeat
// interval: 250 ms with the default of 1 s on every new connection in
// storage mode, 2 s here.
TEST_F(EngineTest, ANewSessionsFirstBytesDoNotWaitForTheLoopsLongestSleep) {
  heartbeat_ms_ = 8'000;  // the loop's longest wait: 2 s
  Connect(Mode::kStorage);
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  // A second connection between engines whose loops run already (a first
  // session starts them, and their first heartbeat with it).
  const int first_client = client_, first_server = server_;
  ConnectEngines();
  const absl::Time start = absl::Now();
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(Send(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(Recv(a_.get(), client_, &byte, 1), 1);
  const absl::Duration took = absl::Now() - start;
  a_->Close(first_client);
  b_->Close(first_server);
  // 50 ms and a few records' latency; the bound is loose for loaded machines
  // but well below the 2 s the loop's longest wait would take.
  EXPECT_LT(took, absl::Seconds(1));
}

// The check of direct sessions (the failure detector's samples) is due every
// detect_ms / 25; the loop used to run it only when its longest wait ended,
// so a silent cut was found up to a quarter of the heartbeat interval late:
// with DISKWIRE_DETECT_MS=200 and the default interval, up to 250 ms on top
// of the 200.
TEST_F(EngineTest, ASilentCutIsFoundWithinTheBoundWhateverTheHeartbeat) {
  heartbeat_ms_ = 40'000;  // the loop's longest wait: 10 s
  base_config_.resume = false;
  Connect();  // detect_ms is 500
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  const absl::Duration took = TimeSilentCut(absl::Seconds(15));
  EXPECT_LT(took, absl::Milliseconds(1500)) << took;
}

}  // namespace
}  // namespace diskwire
