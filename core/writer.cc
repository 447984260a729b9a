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
  if (!workers_.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  StartWorker();
}

void Writer::Stop() {
  absl::MutexLock start_lock(&thread_mu_);
  if (workers_.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (Worker& worker : workers_) worker.thread.join();
  workers_.clear();
}

void Writer::StartWorker() {
  {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  Worker* worker = &workers_.emplace_back();
  worker->thread = std::thread([this, worker] { ThreadMain(worker); });
}

void Writer::Supervise() {
  absl::MutexLock start_lock(&thread_mu_);
  if (workers_.empty()) return;  // not started, or stopped
  bool spare_needed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (!it->retired) {
        ++it;
        continue;
      }
      it->thread.join();  // It has returned from ThreadMain or is about to.
      it = workers_.erase(it);
    }
    spare_needed = !stop_ && running_ < options_.max_threads &&
                   StalledChannels() >= running_;
  }
  if (spare_needed) StartWorker();
}

int Writer::threads() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

int Writer::StalledChannels() const {
  const int64_t now = clock_->NowNs();
  int stalled = 0;
  for (const auto& channel : channels_) {
    const int64_t since = channel->appending_since_ns();
    if (since >= 0 && now - since > options_.stall_ns) ++stalled;
  }
  return stalled;
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

void Writer::ThreadMain(Worker* self) {
  for (;;) {
    const int64_t next = RunOnce();
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    // A spare started for a stall retires once a pass finds nothing to do and
    // the others can cope: one thread each for the stalled Appends, plus one.
    if (next == INT64_MAX && !kicked_ && running_ > 1 &&
        running_ - StalledChannels() > 1) {
      --running_;
      self->retired = true;
      return;
    }
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
