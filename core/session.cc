#include "core/session.h"

#include <algorithm>

namespace diskwire {

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kDirect:
      return "DIRECT";
    case SessionState::kFailingOver:
      return "FAILING_OVER";
    case SessionState::kResuming:
      return "RESUMING";
    case SessionState::kStorage:
      return "STORAGE";
    case SessionState::kClosed:
      return "CLOSED";
  }
  return "?";
}

void LagStats::Add(int64_t us) {
  if (us < 0)
    us =
        0;  // clocks of two hosts: a record cannot arrive before it was written
  if (samples_.size() < kWindow) {
    samples_.push_back(us);
  } else {
    samples_[next_] = us;
    next_ = (next_ + 1) % kWindow;
  }
  max_ = std::max(max_, us);
}

void LagStats::Fill(SessionReport* report) const {
  if (samples_.empty()) return;
  std::vector<int64_t> sorted = samples_;
  std::sort(sorted.begin(), sorted.end());
  report->lag_p50_us = sorted[sorted.size() / 2];
  report->lag_p99_us =
      sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
  report->lag_max_us = max_;
}

}  // namespace diskwire
