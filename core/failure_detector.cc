#include "core/failure_detector.h"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace diskwire {

absl::string_view FailureReasonName(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone:
      return "healthy";
    case FailureReason::kConnectionReset:
      return "connection reset";
    case FailureReason::kTimedOut:
      return "timed out";
    case FailureReason::kBrokenPipe:
      return "broken pipe";
    case FailureReason::kHostUnreachable:
      return "host unreachable";
    case FailureReason::kNetUnreachable:
      return "network unreachable";
    case FailureReason::kConnectionAborted:
      return "connection aborted";
    case FailureReason::kStall:
      return "stall";
    case FailureReason::kKernelClosed:
      return "closed by the kernel";
  }
  return "unknown";
}

FailureReason ReasonForErrno(int err) {
  switch (err) {
    case ECONNRESET:
      return FailureReason::kConnectionReset;
    case ETIMEDOUT:
      return FailureReason::kTimedOut;
    case EPIPE:
      return FailureReason::kBrokenPipe;
    case EHOSTUNREACH:
    case EHOSTDOWN:
      return FailureReason::kHostUnreachable;
    case ENETUNREACH:
    case ENETDOWN:
    case ENETRESET:
      return FailureReason::kNetUnreachable;
    case ECONNABORTED:
      return FailureReason::kConnectionAborted;
    default:
      return FailureReason::kNone;
  }
}

FailureDetector::FailureDetector(const Clock* clock, int64_t detect_ms)
    : clock_(clock), detect_ns_(detect_ms * kNsPerMs) {}

void FailureDetector::Fail(FailureReason reason, int error,
                           std::string detail) {
  if (verdict_.failed()) return;  // Latched: keep the first cause.
  verdict_.reason = reason;
  verdict_.error = error;
  verdict_.detected_ns = clock_->NowNs();
  verdict_.detail = std::move(detail);
}

bool FailureDetector::OnSocketError(int err) {
  FailureReason reason = ReasonForErrno(err);
  if (reason == FailureReason::kNone) return false;
  absl::MutexLock lock(&mu_);
  char buf[64];
  Fail(reason, err,
       absl::StrCat(FailureReasonName(reason), ": socket error ", err, " (",
                    strerror_r(err, buf, sizeof(buf)), ")"));
  return true;
}

bool FailureDetector::OnSample(const PathSample& sample) {
  absl::MutexLock lock(&mu_);
  if (verdict_.failed()) return true;
  switch (sample.tcp_state) {
    case 1:  // TCP_ESTABLISHED
    case 2:  // TCP_SYN_SENT
    case 3:  // TCP_SYN_RECV
    case 4:  // TCP_FIN_WAIT1
    case 5:  // TCP_FIN_WAIT2
    case 8:  // TCP_CLOSE_WAIT
      break;
    case 7:                                     // TCP_CLOSE
      if (!sample.error_pending) return false;  // ended in order
      Fail(FailureReason::kKernelClosed, 0, "the kernel closed the connection");
      return true;
    default:  // closing in order
      return false;
  }
  const int64_t now = clock_->NowNs();
  if (sample.bytes_queued == 0) {
    queued_since_ns_ = -1;
  } else if (queued_since_ns_ < 0) {
    queued_since_ns_ = now;
  }
  const bool held_by_reader =
      sample.peer_window_shut && sample.bytes_in_flight == 0 &&
      sample.retransmits == 0 && sample.unanswered_probes < 2;
  // No ACK for the bound, with bytes queued for the bound: a connection idle
  // for longer than the bound that sends again has had no ACK for that long
  // the moment it writes.
  if (sample.bytes_queued > 0 && !held_by_reader &&
      sample.last_ack_ms * kNsPerMs >= detect_ns_ &&
      now - queued_since_ns_ >= detect_ns_) {
    Fail(FailureReason::kStall, 0,
         absl::StrCat("stall: ", sample.bytes_queued,
                      " bytes queued and no acknowledgement at all for ",
                      sample.last_ack_ms, " ms (bound ", detect_ns_ / kNsPerMs,
                      " ms)"));
    return true;
  }
  const bool progress = !have_sample_ || sample.bytes_acked != last_acked_;
  have_sample_ = true;
  last_acked_ = sample.bytes_acked;
  if (sample.bytes_in_flight == 0) {
    stall_start_ns_ = -1;  // Idle, or held back by the peer's window.
    return false;
  }
  if (progress || stall_start_ns_ < 0) {
    stall_start_ns_ = now;
    return false;
  }
  const int64_t stalled_ns = now - stall_start_ns_;
  if (stalled_ns < detect_ns_) return false;
  Fail(FailureReason::kStall, 0,
       absl::StrCat("stall: ", sample.bytes_in_flight,
                    " bytes in flight, no ACK progress past byte ",
                    sample.bytes_acked, " for ", stalled_ns / kNsPerMs,
                    " ms (bound ", detect_ns_ / kNsPerMs, " ms)"));
  return true;
}

FailureVerdict FailureDetector::verdict() const {
  absl::MutexLock lock(&mu_);
  return verdict_;
}

bool FailureDetector::failed() const {
  absl::MutexLock lock(&mu_);
  return verdict_.failed();
}

int64_t FailureDetector::NextCheckNs() const {
  absl::MutexLock lock(&mu_);
  int64_t start = clock_->NowNs();
  if (stall_start_ns_ >= 0) start = std::min(start, stall_start_ns_);
  if (queued_since_ns_ >= 0) start = std::min(start, queued_since_ns_);
  return start + detect_ns_;
}

void FailureDetector::Reset() {
  absl::MutexLock lock(&mu_);
  verdict_ = FailureVerdict();
  have_sample_ = false;
  last_acked_ = 0;
  stall_start_ns_ = -1;
  queued_since_ns_ = -1;
}

PeerLiveness::PeerLiveness(const Clock* clock, int64_t peer_timeout_ms)
    : clock_(clock), timeout_ns_(peer_timeout_ms * kNsPerMs) {}

void PeerLiveness::OnHeartbeat(uint64_t sequence, int64_t beat_realtime_ns) {
  absl::MutexLock lock(&mu_);
  const int64_t now = clock_->NowNs();
  if (!seen_) {
    int64_t age = clock_->RealtimeNs() - beat_realtime_ns;
    if (age < 0) age = 0;  // Written "in the future": the peer's clock leads.
    seen_ = true;
    last_sequence_ = sequence;
    last_beat_ = beat_realtime_ns;
    last_alive_ns_ = now - age;
    return;
  }
  if (sequence == last_sequence_ && beat_realtime_ns == last_beat_) return;
  last_sequence_ = sequence;
  last_beat_ = beat_realtime_ns;
  last_alive_ns_ = now;
}

PeerLiveness::State PeerLiveness::state() const {
  absl::MutexLock lock(&mu_);
  if (!seen_) return State::kUnknown;
  return clock_->NowNs() - last_alive_ns_ < timeout_ns_ ? State::kFresh
                                                        : State::kStale;
}

int64_t PeerLiveness::last_alive_ns() const {
  absl::MutexLock lock(&mu_);
  return last_alive_ns_;
}

absl::string_view PeerStateName(PeerLiveness::State state) {
  switch (state) {
    case PeerLiveness::State::kUnknown:
      return "unknown";
    case PeerLiveness::State::kFresh:
      return "fresh";
    case PeerLiveness::State::kStale:
      return "stale";
  }
  return "invalid";
}

}  // namespace diskwire
