#include "core/writer.h"

#include <algorithm>
#include <utility>

namespace diskwire {

Writer::Writer(const Clock* clock, const WriterOptions& options)
    : clock_(clock), options_(options) {}

Writer::~Writer() {
  Stop();
  absl::MutexLock lock(&mu_);
  for (auto& channel : channels_) channel->Detach();
}

void Writer::Start() {
  absl::MutexLock start_lock(&thread_mu_);
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { ThreadMain(); });
}

void Writer::Stop() {
  absl::MutexLock start_lock(&thread_mu_);
  if (!thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

std::shared_ptr<OutboundChannel> Writer::AddChannel(
    storage::SessionId session_id, uint8_t direction,
    storage::ChannelWriter* sink) {
  std::shared_ptr<OutboundChannel> channel(
      new OutboundChannel(this, options_, session_id, direction, sink));
  absl::MutexLock lock(&mu_);
  channels_.push_back(channel);
  return channel;
}

void Writer::RemoveChannel(const std::shared_ptr<OutboundChannel>& channel) {
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find(channels_.begin(), channels_.end(), channel);
    if (it != channels_.end()) channels_.erase(it);
  }
  channel->Detach();
}

void Writer::Kick() {
  absl::MutexLock lock(&mu_);
  kicked_ = true;
}

uint64_t Writer::passes() const {
  absl::MutexLock lock(&mu_);
  return passes_;
}

int64_t Writer::RunOnce() {
  std::vector<std::shared_ptr<OutboundChannel>> channels;
  {
    absl::MutexLock lock(&mu_);
    ++passes_;
    kicked_ = false;  // This pass sees every submission made before it.
    channels = channels_;
  }
  const int64_t now = clock_->NowNs();
  int64_t next = INT64_MAX;
  for (const auto& channel : channels) {
    next = std::min(next, channel->FlushIfDue(now));
  }
  return next;
}

void Writer::ThreadMain() {
  for (;;) {
    const int64_t next = RunOnce();
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return kicked_ || stop_;
    };
    if (next == INT64_MAX) {
      mu_.Await(absl::Condition(&woken));  // Idle: sleep until kicked.
    } else {
      const int64_t wait_ns = next - clock_->NowNs();
      if (wait_ns > 0) {
        mu_.AwaitWithTimeout(absl::Condition(&woken),
                             absl::Nanoseconds(wait_ns));
      }
    }
    if (stop_) return;
  }
}

}  // namespace diskwire
