// File: core/writer_fake_sink.h
// A storage::ChannelWriter for writer tests (testonly): records every batch,
// fails on command, and lets a test wait for batches without sleeping.

#ifndef DISKWIRE_CORE_WRITER_FAKE_SINK_H_
#define DISKWIRE_CORE_WRITER_FAKE_SINK_H_

#include <deque>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/volume.h"

namespace diskwire {

// Thread-safe.
class FakeSink final : public storage::ChannelWriter {
 public:
  absl::Status Append(absl::Span<const storage::Record> records) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (hang_next_) {  // A stalled filesystem: back only when released.
      hang_next_ = false;
      hanging_ = true;
      auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !hanging_;
      };
      mu_.Await(absl::Condition(&released));
    }
    if (!failures_.empty()) {
      absl::Status s = failures_.front();
      failures_.pop_front();
      return s;
    }
    batches_.emplace_back(records.begin(), records.end());
    return absl::OkStatus();
  }
  absl::Status Sync() override {
    absl::MutexLock lock(&mu_);
    ++syncs_;
    return absl::OkStatus();
  }
  int syncs() const {
    absl::MutexLock lock(&mu_);
    return syncs_;
  }
  absl::Status TrimBelow(uint64_t offset) override {
    absl::MutexLock lock(&mu_);
    trimmed_below_ = offset;
    return absl::OkStatus();
  }
  uint64_t trimmed_below() const {
    absl::MutexLock lock(&mu_);
    return trimmed_below_;
  }
  absl::Status Close() override { return absl::OkStatus(); }
  std::optional<storage::RecordHeader> last_record() const override {
    return std::nullopt;
  }
  const std::vector<std::string>& recovery_notes() const override {
    return notes_;
  }

  // The next Append call hangs until Release().
  void HangNextAppend() {
    absl::MutexLock lock(&mu_);
    hang_next_ = true;
  }
  // Waits until an Append hangs; false after `timeout`.
  bool AwaitHanging(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&hanging_), timeout);
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    hanging_ = false;
  }
  // The next Append calls fail with these, in order.
  void FailNext(absl::Status s) {
    absl::MutexLock lock(&mu_);
    failures_.push_back(std::move(s));
  }
  std::vector<std::vector<storage::Record>> batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // The DATA payloads of every successful batch, concatenated.
  std::string data() const {
    absl::MutexLock lock(&mu_);
    std::string out;
    for (const auto& batch : batches_) {
      for (const auto& r : batch) {
        if (r.header.type == storage::RecordType::kData) out += r.payload;
      }
    }
    return out;
  }
  // Waits until `n` data bytes have arrived; false after `timeout`.
  bool AwaitDataBytes(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      size_t total = 0;
      for (const auto& batch : batches_) {
        for (const auto& r : batch) total += r.payload.size();
      }
      return total >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  mutable absl::Mutex mu_;
  int syncs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t trimmed_below_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool hang_next_ ABSL_GUARDED_BY(mu_) = false;
  bool hanging_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<storage::Record>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> notes_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_WRITER_FAKE_SINK_H_
