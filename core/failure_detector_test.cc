#include "core/failure_detector.h"

#include <errno.h>

#include "core/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDetectMs = 1000;

class FailureDetectorTest : public ::testing::Test {
 protected:
  // Feeds one sample: `acked` bytes acknowledged so far, `in_flight` unacked.
  bool Sample(uint64_t acked, uint64_t in_flight) {
    return detector_.OnSample({acked, in_flight});
  }

  FakeClock clock_{/*start_ns=*/42 * kNsPerSec};
  FailureDetector detector_{&clock_, kDetectMs};
};

TEST_F(FailureDetectorTest, NewDetectorIsHealthy) {
  EXPECT_FALSE(detector_.failed());
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kNone);
}

TEST_F(FailureDetectorTest, IdleConnectionNeverFails) {
  for (int i = 0; i < 100; ++i) {
    EXPECT_FALSE(Sample(/*acked=*/500, /*in_flight=*/0));
    clock_.AdvanceMs(kDetectMs);
  }
  EXPECT_FALSE(detector_.failed());
}

TEST_F(FailureDetectorTest, SlowButProgressingConnectionDoesNotFail) {
  uint64_t acked = 0;
  for (int i = 0; i < 100; ++i) {
    acked += 1;  // One byte acknowledged per 900 ms: slow, but moving.
    EXPECT_FALSE(Sample(acked, /*in_flight=*/64 * 1024));
    clock_.AdvanceMs(900);
  }
  EXPECT_FALSE(detector_.failed());
}

TEST_F(FailureDetectorTest, StallFailsAtTheBoundNotBefore) {
  EXPECT_FALSE(Sample(100, 50));  // Stall clock starts here.
  const int64_t start = clock_.NowNs();
  EXPECT_EQ(detector_.NextCheckNs(), start + kDetectMs * kNsPerMs);
  clock_.AdvanceMs(kDetectMs - 1);
  EXPECT_FALSE(Sample(100, 50));
  clock_.AdvanceNs(kNsPerMs - 1);
  EXPECT_FALSE(Sample(100, 50));  // 1 ns short of the bound.
  clock_.Advance(1);
  EXPECT_TRUE(Sample(100, 50));  // Exactly at the bound.
  FailureVerdict v = detector_.verdict();
  EXPECT_EQ(v.reason, FailureReason::kStall);
  EXPECT_EQ(v.detected_ns, start + kDetectMs * kNsPerMs);
  EXPECT_THAT(v.detail, HasSubstr("50 bytes in flight"));
  EXPECT_THAT(v.detail, HasSubstr("past byte 100"));
}

TEST_F(FailureDetectorTest, ProgressRestartsTheStallClock) {
  Sample(100, 50);
  clock_.AdvanceMs(kDetectMs - 1);
  EXPECT_FALSE(Sample(120, 30));  // Progress just in time.
  clock_.AdvanceMs(kDetectMs - 1);
  EXPECT_FALSE(Sample(120, 30));
  clock_.AdvanceMs(1);
  EXPECT_TRUE(Sample(120, 30));
}

TEST_F(FailureDetectorTest, DrainingToIdleRestartsTheStallClock) {
  Sample(100, 50);
  clock_.AdvanceMs(kDetectMs - 1);
  EXPECT_FALSE(Sample(100, 0));  // Nothing in flight (e.g. zero window).
  clock_.AdvanceMs(10);
  EXPECT_FALSE(Sample(100, 50));  // New stall starts now, not at t0.
  clock_.AdvanceMs(kDetectMs - 1);
  EXPECT_FALSE(Sample(100, 50));
}

TEST_F(FailureDetectorTest, FirstSampleNeverFailsEvenIfInFlight) {
  clock_.AdvanceMs(10 * kDetectMs);
  EXPECT_FALSE(Sample(0, 4096));
}

TEST_F(FailureDetectorTest, NetworkErrorsFailImmediatelyWithTheirReason) {
  struct Case {
    int err;
    FailureReason reason;
    const char* name;
  };
  const Case cases[] = {
      {ECONNRESET, FailureReason::kConnectionReset, "connection reset"},
      {ETIMEDOUT, FailureReason::kTimedOut, "timed out"},
      {EPIPE, FailureReason::kBrokenPipe, "broken pipe"},
      {EHOSTUNREACH, FailureReason::kHostUnreachable, "host unreachable"},
      {ENETUNREACH, FailureReason::kNetUnreachable, "network unreachable"},
      {ENETDOWN, FailureReason::kNetUnreachable, "network unreachable"},
      {ECONNABORTED, FailureReason::kConnectionAborted, "connection aborted"},
  };
  for (const Case& c : cases) {
    FailureDetector d(&clock_, kDetectMs);
    EXPECT_TRUE(d.OnSocketError(c.err)) << c.name;
    FailureVerdict v = d.verdict();
    EXPECT_EQ(v.reason, c.reason) << c.name;
    EXPECT_EQ(v.error, c.err);
    EXPECT_EQ(v.detected_ns, clock_.NowNs());
    EXPECT_EQ(FailureReasonName(v.reason), c.name);
    EXPECT_THAT(v.detail, HasSubstr(c.name));
  }
  EXPECT_EQ(FailureReasonName(FailureReason::kStall), "stall");
}

TEST_F(FailureDetectorTest, NonNetworkErrorsAreNotFailures) {
  for (int err : {EAGAIN, EINTR, EBADF, ENOMEM, EINVAL, 0}) {
    EXPECT_FALSE(detector_.OnSocketError(err)) << err;
  }
  EXPECT_FALSE(detector_.failed());
}

TEST_F(FailureDetectorTest, VerdictIsLatchedUntilReset) {
  ASSERT_TRUE(detector_.OnSocketError(ECONNRESET));
  clock_.AdvanceMs(5);
  detector_.OnSocketError(ETIMEDOUT);  // A later error does not replace it.
  EXPECT_TRUE(Sample(1, 0));           // Nor does an idle sample heal it.
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kConnectionReset);
  detector_.Reset();
  EXPECT_FALSE(detector_.failed());
  EXPECT_FALSE(Sample(0, 10));
}

// The kernel gave up on the connection (a reset, its user timeout): the
// probe sees TCP_CLOSE with an error pending, and that is a failure whatever
// the counters say.
TEST_F(FailureDetectorTest, AConnectionTheKernelClosedHasFailed) {
  PathSample closed;
  closed.tcp_state = 7;  // TCP_CLOSE
  closed.error_pending = true;
  EXPECT_TRUE(detector_.OnSample(closed));
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kKernelClosed);
}

// TIME_WAIT, LAST_ACK, CLOSING, and TCP_CLOSE with no error (the socket an
// application holds once its connection went to TIME_WAIT): both sides are
// ending the connection in order; that is the application's business, even
// with bytes in flight.
TEST_F(FailureDetectorTest, AConnectionClosingInOrderNeverFails) {
  for (uint8_t state : {6, 7, 9, 11}) {
    PathSample closing;
    closing.tcp_state = state;
    closing.bytes_in_flight = 10;
    closing.bytes_queued = 10;
    closing.last_ack_ms = 10 * kDetectMs;
    EXPECT_FALSE(detector_.OnSample(closing)) << int{state};
    clock_.AdvanceMs(2 * kDetectMs);
    EXPECT_FALSE(detector_.OnSample(closing)) << int{state};
  }
}

// After retransmission timeouts the kernel counts its queue as not yet sent:
// nothing is in flight, but no ACK at all came for the bound.
TEST_F(FailureDetectorTest, BytesQueuedWithNoAckAtAllForTheBoundHaveFailed) {
  PathSample held;
  held.bytes_queued = 100;
  held.last_ack_ms = 1;
  EXPECT_FALSE(detector_.OnSample(held));
  clock_.AdvanceMs(kDetectMs - 2);
  held.last_ack_ms = kDetectMs - 1;
  EXPECT_FALSE(detector_.OnSample(held));
  clock_.AdvanceMs(1);
  held.last_ack_ms = kDetectMs;
  EXPECT_FALSE(detector_.OnSample(held)) << "queued for less than the bound";
  clock_.AdvanceMs(1);
  held.last_ack_ms = kDetectMs + 1;
  EXPECT_TRUE(detector_.OnSample(held));
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kStall);
}

// A connection idle for longer than the bound sends again: the moment the
// bytes are written, the last ACK is as old as the idle time, and a probe
// that looks before their ACK comes (a delayed ACK takes up to 200 ms) must
// not take that for a stall. The bound counts from when the queue was seen.
TEST_F(FailureDetectorTest, AnIdleConnectionThatSendsAgainHasNotStalled) {
  PathSample idle;
  idle.last_ack_ms = 60 * kDetectMs;
  EXPECT_FALSE(detector_.OnSample(idle));
  PathSample sent = idle;
  sent.bytes_queued = 100;
  sent.bytes_in_flight = 100;
  EXPECT_FALSE(detector_.OnSample(sent));
  clock_.AdvanceMs(kDetectMs - 1);
  sent.last_ack_ms += kDetectMs - 1;
  EXPECT_FALSE(detector_.OnSample(sent));
  // Still no ACK at the bound: that is a stall.
  clock_.AdvanceMs(1);
  sent.last_ack_ms += 1;
  EXPECT_TRUE(detector_.OnSample(sent));
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kStall);
}

// A reader that stops reading: its kernel answers every zero-window probe,
// but the probes come at doubling intervals, so the last ACK may be older
// than the bound. Two unanswered probes are a failure.
TEST_F(FailureDetectorTest, AZeroWindowWhoseProbesAreAnsweredLateIsFine) {
  PathSample held;
  held.bytes_queued = 100;
  held.peer_window_shut = true;
  held.last_ack_ms = 10 * kDetectMs;
  for (uint8_t probes : {0, 1}) {
    held.unanswered_probes = probes;
    EXPECT_FALSE(detector_.OnSample(held)) << int{probes};
    clock_.AdvanceMs(kDetectMs);
  }
  held.unanswered_probes = 2;
  EXPECT_TRUE(detector_.OnSample(held));
  EXPECT_EQ(detector_.verdict().reason, FailureReason::kStall);
}

// A zero window holds bytes back, but its probes still get ACKs.
TEST_F(FailureDetectorTest, BytesQueuedBehindAZeroWindowThatIsAckedAreFine) {
  PathSample held;
  held.bytes_queued = 100;
  held.last_ack_ms = 20;
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(detector_.OnSample(held));
    clock_.AdvanceMs(kDetectMs);
  }
}

class PeerLivenessTest : public ::testing::Test {
 protected:
  static constexpr int64_t kTimeoutMs = 3000;
  FakeClock clock_{/*start_ns=*/7 * kNsPerSec};
  PeerLiveness peer_{&clock_, kTimeoutMs};
};

TEST_F(PeerLivenessTest, UnknownUntilFirstHeartbeat) {
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kUnknown);
  EXPECT_EQ(PeerStateName(peer_.state()), "unknown");
}

TEST_F(PeerLivenessTest, FreshHeartbeatThenStaleAfterTimeout) {
  peer_.OnHeartbeat(1, clock_.RealtimeNs());
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kFresh);
  clock_.AdvanceMs(kTimeoutMs - 1);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kFresh);
  clock_.AdvanceMs(1);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kStale);
  EXPECT_EQ(PeerStateName(peer_.state()), "stale");
}

TEST_F(PeerLivenessTest, FirstHeartbeatIsAgedByItsTimestamp) {
  peer_.OnHeartbeat(1, clock_.RealtimeNs() - 2000 * kNsPerMs);  // 2 s old.
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kFresh);
  clock_.AdvanceMs(1000);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kStale);
}

TEST_F(PeerLivenessTest, OldFirstHeartbeatIsStale) {
  peer_.OnHeartbeat(1, clock_.RealtimeNs() - 60 * kNsPerSec);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kStale);
}

TEST_F(PeerLivenessTest, RepeatedSameHeartbeatIsNoEvidence) {
  int64_t beat = clock_.RealtimeNs();
  peer_.OnHeartbeat(4, beat);
  clock_.AdvanceMs(kTimeoutMs);
  peer_.OnHeartbeat(4, beat);  // Same file content read again: peer silent.
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kStale);
}

TEST_F(PeerLivenessTest, NewerBeatProvesLifeDespiteSkewedClock) {
  // The peer's clock is 10 minutes behind ours.
  int64_t skew = 600 * kNsPerSec;
  peer_.OnHeartbeat(1, clock_.RealtimeNs() - skew);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kStale);
  clock_.AdvanceMs(500);
  peer_.OnHeartbeat(2, clock_.RealtimeNs() - skew);  // It advanced: alive.
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kFresh);
  EXPECT_EQ(peer_.last_alive_ns(), clock_.NowNs());
}

// NTP steps the peer's clock back a second: its next beat carries an older
// time than the last, and a new sequence number. It is alive.
TEST_F(PeerLivenessTest, ABeatWrittenAfterThePeersClockSteppedBackProvesLife) {
  const int64_t beat = clock_.RealtimeNs();
  peer_.OnHeartbeat(8, beat);
  clock_.AdvanceMs(kTimeoutMs - 100);
  peer_.OnHeartbeat(9, beat - kNsPerSec);
  clock_.AdvanceMs(200);
  EXPECT_EQ(peer_.state(), PeerLiveness::State::kFresh);
}

}  // namespace
}  // namespace diskwire
