// File: core/failure_detector.h
// Decides when a selected connection's network path has failed (DESIGN.md §3,
// "Failure"), and whether the peer process is still alive (PeerLiveness).
//
// Pure logic over a Clock: the engine feeds it socket errors and periodic
// TCP probe samples (core/tcp_probe.h), and reads the verdict.

#ifndef DISKWIRE_CORE_FAILURE_DETECTOR_H_
#define DISKWIRE_CORE_FAILURE_DETECTOR_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"

namespace diskwire {

// Why a connection was declared failed.
enum class FailureReason {
  kNone = 0,
  kConnectionReset,    // ECONNRESET
  kTimedOut,           // ETIMEDOUT (TCP user timeout, keepalive)
  kBrokenPipe,         // EPIPE
  kHostUnreachable,    // EHOSTUNREACH, EHOSTDOWN
  kNetUnreachable,     // ENETUNREACH, ENETDOWN, ENETRESET
  kConnectionAborted,  // ECONNABORTED
  kStall,              // data outstanding, no ACK progress for detect_ms
  kKernelClosed,       // TCP_CLOSE without our close: the kernel gave up
};

// "connection reset", "stall", ...; never empty.
absl::string_view FailureReasonName(FailureReason reason);

// The failure an errno on a connected TCP socket means, or kNone when the
// errno says nothing about the network (EAGAIN, EINTR, EBADF, ...).
FailureReason ReasonForErrno(int err);

// What a probe of the socket says (TcpSample::path_sample()).
struct PathSample {
  uint64_t bytes_acked = 0;      // tcpi_bytes_acked: cumulative, monotonic
  uint64_t bytes_in_flight = 0;  // sent, not yet acknowledged by the peer
  // Written and not acknowledged, sent or held back (SIOCOUTQ), and how long
  // ago the last ACK came.
  uint64_t bytes_queued = 0;
  int64_t last_ack_ms = 0;
  uint8_t tcp_state = 1;  // tcpi_state; TCP_ESTABLISHED
  // Retransmission timeouts in a row (tcpi_retransmits), and zero-window
  // probes the peer has not answered (tcpi_probes; an ACK resets it).
  uint8_t retransmits = 0;
  uint8_t unanswered_probes = 0;
  // The peer advertises a zero window (known on Linux >= 6.2 only).
  bool peer_window_shut = false;
  // TCP_CLOSE with an error for the application (else it ended in order).
  bool error_pending = false;
};

struct FailureVerdict {
  FailureReason reason = FailureReason::kNone;  // kNone: healthy
  int error = 0;            // the errno, for error-driven failures
  int64_t detected_ns = 0;  // Clock::NowNs() at detection
  std::string detail;       // one line for the log
  bool failed() const { return reason != FailureReason::kNone; }
};

// Failure detection for one connection: every path that judges one (a socket
// error on the application's call, the loop's periodic probe, a wait that
// reports an error) goes through it. Healthy until the first of:
//  - a socket error that names the network (ReasonForErrno);
//  - the kernel closed the connection (TCP_CLOSE with an error pending: a
//    reset, its user timeout; without one, the connection ended in order);
//  - a stall: bytes in flight and no progress of bytes_acked for detect_ms;
//  - bytes queued for detect_ms (from the first sample that saw them) and no
//    ACK at all for detect_ms (after retransmission
//    timeouts, or with the link down, the kernel holds its queue back as not
//    yet sent, so nothing counts as in flight), unless the peer keeps its
//    window shut and answers the kernel's probes: an application that does
//    not read. The kernel probes a shut window at doubling intervals (0.2 s,
//    0.4 s, ... up to 2 min), so those ACKs may come further apart than
//    detect_ms; two unanswered probes, a retransmission timeout or bytes in
//    flight still are a failure.
// An idle connection (nothing in flight) never stalls, a slow one that keeps
// making progress never does, and data held back by the peer's zero window is
// not in flight. A connection closing in order (TIME_WAIT, LAST_ACK, ...) is
// the application's business. The verdict is latched: the first failure is
// kept until Reset().
//
// Stall timing: the stall clock starts at the first sample that shows the
// current bytes_acked with data in flight, so it never fires early; it fires at
// the first sample at or after start + detect_ms. Sample at least every
// NextCheckNs() to keep the bound.
//
// Thread-safe: errors may be reported from application threads while the
// engine loop feeds samples.
class FailureDetector {
 public:
  // REQUIRES: clock outlives the detector; detect_ms > 0.
  FailureDetector(const Clock* clock, int64_t detect_ms);

  // A socket call failed with `err`. Returns true (and latches the failure)
  // when the errno means the connection's network path failed.
  bool OnSocketError(int err);

  // A probe sample; returns true when the connection has (now or before)
  // failed.
  bool OnSample(const PathSample& sample);

  // The verdict so far.
  FailureVerdict verdict() const;
  bool failed() const;

  // Monotonic time by which the next sample must be taken to detect a stall
  // at the bound: start + detect_ms while a stall clock runs, otherwise
  // now + detect_ms.
  int64_t NextCheckNs() const;

  // Back to healthy, forgetting every sample (after a resume on a new
  // connection).
  void Reset();

 private:
  void Fail(FailureReason reason, int error, std::string detail)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const int64_t detect_ns_;
  mutable absl::Mutex mu_;
  FailureVerdict verdict_ ABSL_GUARDED_BY(mu_);
  bool have_sample_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_acked_ ABSL_GUARDED_BY(mu_) = 0;
  // Start of the current stall, or -1 when nothing is in flight.
  int64_t stall_start_ns_ ABSL_GUARDED_BY(mu_) = -1;
  // The first sample that saw bytes queued since the queue was last seen
  // empty, or -1.
  int64_t queued_since_ns_ ABSL_GUARDED_BY(mu_) = -1;
};

// Whether the peer process is alive, judged from its heartbeats on the volume.
// A heartbeat carries the peer's sequence number and CLOCK_REALTIME time of
// writing. A beat that differs from the last one seen proves the peer alive at
// the moment it is observed, by this host's clock, whatever the two hosts'
// clocks say (a peer whose clock steps back is still alive). The first beat
// seen is aged by comparing its time with this host's realtime clock (clamped
// at 0), so a single read at failover gives an answer; with clock skew beyond
// peer_timeout_ms that first judgement may be wrong until the next beat.
//
// Thread-safe.
class PeerLiveness {
 public:
  enum class State {
    kUnknown,  // no heartbeat seen
    kFresh,    // last evidence of life younger than peer_timeout_ms
    kStale,    // no evidence of life for peer_timeout_ms or more
  };

  // REQUIRES: clock outlives this; peer_timeout_ms > 0.
  PeerLiveness(const Clock* clock, int64_t peer_timeout_ms);

  // The peer's heartbeat as read now: its sequence number and timestamp. The
  // same beat read again is no new evidence.
  void OnHeartbeat(uint64_t sequence, int64_t beat_realtime_ns);

  State state() const;
  // Monotonic time of the last evidence of life; REQUIRES: state() != kUnknown.
  int64_t last_alive_ns() const;

 private:
  const Clock* const clock_;
  const int64_t timeout_ns_;
  mutable absl::Mutex mu_;
  bool seen_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_beat_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_alive_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::string_view PeerStateName(PeerLiveness::State state);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_FAILURE_DETECTOR_H_
