// How a session over the volume ends when the peer's process goes: two
// engines joined by loopback TCP and a directory volume
// (core/engine_test_fixture.h), the failover forced.

#include <errno.h>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST_F(EngineTest, PeerDeathEndsTheSessionWithTimedOut) {
  Connect();
  ForceFailover(a_.get(), client_);
  b_->StopWithoutDrain();  // killed: nothing more is written and its heartbeat
                           // goes stale
  char buf[16];
  absl::Time start = absl::Now();
  ssize_t r = Recv(a_.get(), client_, buf, sizeof(buf));
  EXPECT_EQ(r, -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace diskwire
