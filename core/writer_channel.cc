#include "core/writer_channel.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/writer.h"

namespace diskwire {

using storage::Record;
using storage::RecordType;

OutboundChannel::OutboundChannel(Writer* writer, const WriterOptions& options,
                                 storage::SessionId session_id,
                                 uint8_t direction,
                                 storage::ChannelWriter* sink)
    : writer_(writer),
      options_(options),
      session_id_(session_id),
      direction_(direction),
      sink_(sink) {}

bool OutboundChannel::PendingLocked() const {
  return !queue_.empty() || !inflight_.empty() || ack_offset_ > ack_sent_;
}

bool OutboundChannel::NotePending(int64_t now) {
  if (pending_since_ns_ >= 0) return false;
  pending_since_ns_ = now;
  return true;
}

absl::StatusOr<size_t> OutboundChannel::TrySubmitData(uint64_t offset,
                                                      absl::string_view bytes) {
  bool kick = false;
  size_t n = 0;
  {
    absl::MutexLock lock(&mu_);
    if (removed_) return absl::CancelledError("outbound channel removed");
    if (data_started_ && offset != data_end_) {
      return absl::InvalidArgumentError(
          absl::StrCat("outbound DATA at offset ", offset,
                       " does not follow offset ", data_end_));
    }
    if (!data_started_) {
      if (offset < control_floor_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "outbound DATA at offset ", offset,
            " starts below the last control record's offset ", control_floor_));
      }
      data_started_ = true;
      data_end_ = offset;
      appended_offset_ = offset;
    }
    n = std::min(bytes.size(), options_.buffer_bytes - buffered_);
    if (n == 0) return 0;
    const bool was_below_hwm = buffered_ < options_.high_water_bytes;
    for (size_t done = 0; done < n;) {
      if (queue_.empty() || queue_.back().header.type != RecordType::kData ||
          queue_.back().payload.size() >= options_.max_record_payload) {
        Record r;
        r.header.type = RecordType::kData;
        r.header.stream_offset = data_end_ + done;
        queue_.push_back(std::move(r));
      }
      std::string& payload = queue_.back().payload;
      size_t take =
          std::min(n - done, options_.max_record_payload - payload.size());
      payload.append(bytes.data() + done, take);
      done += take;
    }
    data_end_ += n;
    buffered_ += n;
    kick = NotePending(writer_->clock_->NowNs());
    kick |= was_below_hwm && buffered_ >= options_.high_water_bytes;
  }
  if (kick) writer_->Kick();
  return n;
}

absl::Status OutboundChannel::SubmitData(uint64_t offset,
                                         absl::string_view bytes) {
  size_t done = 0;
  for (;;) {
    absl::StatusOr<size_t> n = TrySubmitData(offset + done, bytes.substr(done));
    if (!n.ok()) return n.status();
    done += *n;
    if (done == bytes.size()) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return removed_ || buffered_ < options_.buffer_bytes;
    };
    mu_.Await(absl::Condition(&room));
  }
}

void OutboundChannel::SubmitAck(uint64_t ack_offset) {
  bool kick = false;
  {
    absl::MutexLock lock(&mu_);
    if (removed_ || ack_offset <= ack_offset_) return;
    ack_offset_ = ack_offset;
    kick = NotePending(writer_->clock_->NowNs());
  }
  if (kick) writer_->Kick();
}

absl::Status OutboundChannel::SubmitControl(RecordType type,
                                            uint64_t stream_offset,
                                            std::string payload) {
  if (type == RecordType::kData || type == RecordType::kAck) {
    return absl::InvalidArgumentError(
        absl::StrCat("record type ", static_cast<int>(type),
                     " is not a control record: use SubmitData/SubmitAck"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (removed_) return absl::CancelledError("outbound channel removed");
    const uint64_t floor = std::max(control_floor_, data_end_);
    if (stream_offset < floor) {
      return absl::InvalidArgumentError(
          absl::StrCat("control record at offset ", stream_offset,
                       " would go below offset ", floor, " already queued"));
    }
    control_floor_ = stream_offset;
    Record r;
    r.header.type = type;
    r.header.stream_offset = stream_offset;
    r.payload = std::move(payload);
    queue_.push_back(std::move(r));
    urgent_ = true;
    NotePending(writer_->clock_->NowNs());
  }
  writer_->Kick();  // Control records do not wait for the flush deadline.
  return absl::OkStatus();
}

void OutboundChannel::SetRoomCallback(std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  room_callback_ = std::move(callback);
}

int64_t OutboundChannel::DueNs(int64_t now) const {
  if (removed_ || !PendingLocked()) return INT64_MAX;
  int64_t due;
  if (!inflight_.empty() || urgent_ || buffered_ >= options_.high_water_bytes) {
    due = now;
  } else {
    due = pending_since_ns_ + options_.flush_delay_ns;
  }
  return std::max(due, retry_at_ns_);
}

void OutboundChannel::SetIdleSync(int64_t interval_ns) {
  absl::MutexLock lock(&mu_);
  idle_sync_ns_ = interval_ns;
}

std::optional<int64_t> OutboundChannel::SyncIfIdle(int64_t now) {
  storage::ChannelWriter* sink;
  {
    absl::MutexLock lock(&mu_);
    if (flushing_ || removed_ || sync_due_ns_ < 0 || DueNs(now) != INT64_MAX)
      return std::nullopt;
    if (sync_due_ns_ > now) return sync_due_ns_;
    sync_due_ns_ = -1;
    flushing_ = true;
    flushing_since_ns_ = writer_->clock_->NowNs();
    sink = sink_;
  }
  absl::Status synced = sink->Sync();
  absl::MutexLock lock(&mu_);
  flushing_ = false;
  flushing_since_ns_ = -1;
  if (!synced.ok()) status_ = synced;
  return DueNs(now);
}

int64_t OutboundChannel::FlushIfDue(int64_t now) {
  // Idle with unsynced appends: sync once the interval has passed.
  if (std::optional<int64_t> next = SyncIfIdle(now)) return *next;
  storage::ChannelWriter* sink;
  uint64_t ack;
  {
    absl::MutexLock lock(&mu_);
    if (flushing_) return INT64_MAX;  // Another RunOnce() is on it.
    int64_t due = DueNs(now);
    if (due > now) return due;
    if (inflight_.empty()) {
      for (Record& r : queue_) inflight_.push_back(std::move(r));
      queue_.clear();
      urgent_ = false;
      if (inflight_.empty()) {  // Only the ack offset to send.
        inflight_.emplace_back();
        inflight_.back().header.type = RecordType::kAck;
        inflight_.back().header.stream_offset =
            std::max(data_end_, control_floor_);
      }
    }
    pending_since_ns_ = -1;  // Anything submitted from now on starts anew.
    ack = ack_offset_;
    for (Record& r : inflight_) {
      r.header.session_id = session_id_;
      r.header.direction = direction_;
      r.header.ack_offset = ack;
      r.header.timestamp_ns = 0;  // The channel stamps the append time.
    }
    flushing_ = true;
    flushing_since_ns_ = writer_->clock_->NowNs();
    sink = sink_;
  }

  // Trimming first: on a full volume the space the peer's acknowledgements
  // free is what lets this append (and its retries) go through.
  uint64_t trim;
  {
    absl::MutexLock lock(&mu_);
    trim = trim_below_;
  }
  if (trim > trimmed_) {
    absl::Status trimmed = sink->TrimBelow(trim);
    if (trimmed.ok()) trimmed_ = trim;
  }
  absl::Status status = sink->Append(inflight_);

  std::function<void()> room_callback;
  int64_t next_due;
  {
    absl::MutexLock lock(&mu_);
    flushing_ = false;
    flushing_since_ns_ = -1;
    if (status.ok()) {
      size_t data_bytes = 0;
      for (const Record& r : inflight_) {
        if (r.header.type != RecordType::kData) continue;
        data_bytes += r.payload.size();
        appended_offset_ = r.header.stream_offset + r.payload.size();
      }
      buffered_ -= data_bytes;
      ++stats_.appends;
      stats_.records += inflight_.size();
      inflight_.clear();
      ack_sent_ = std::max(ack_sent_, ack);
      backoff_ns_ = 0;
      retry_at_ns_ = 0;
      status_ = absl::OkStatus();
      if (data_bytes > 0) room_callback = room_callback_;
      if (idle_sync_ns_ > 0) sync_due_ns_ = now + idle_sync_ns_;
      if (PendingLocked()) NotePending(now);
    } else {
      ++stats_.failed_appends;
      backoff_ns_ = std::clamp(backoff_ns_ * 2, options_.retry_min_ns,
                               options_.retry_max_ns);
      retry_at_ns_ = now + backoff_ns_;
      status_ = absl::Status(
          status.code(),
          absl::StrCat("appending ", inflight_.size(),
                       " records to the send volume (retrying in ",
                       backoff_ns_ / kNsPerMs, " ms): ", status.message()));
    }
    next_due = DueNs(now);
    if (sync_due_ns_ >= 0) next_due = std::min(next_due, sync_due_ns_);
  }
  if (room_callback) room_callback();
  return next_due;
}

void OutboundChannel::RequestTrim(uint64_t stream_offset) {
  absl::MutexLock lock(&mu_);
  trim_below_ = std::max(trim_below_, stream_offset);
}

void OutboundChannel::Detach() {
  absl::MutexLock lock(&mu_);
  removed_ = true;
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !flushing_; };
  mu_.Await(absl::Condition(&idle));
  sink_ = nullptr;
}

size_t OutboundChannel::buffered_bytes() const {
  absl::MutexLock lock(&mu_);
  return buffered_;
}

uint64_t OutboundChannel::appended_offset() const {
  absl::MutexLock lock(&mu_);
  return appended_offset_;
}

absl::Status OutboundChannel::status() const {
  absl::MutexLock lock(&mu_);
  if (flushing_since_ns_ >= 0) {
    const int64_t running = writer_->clock_->NowNs() - flushing_since_ns_;
    if (running > options_.stall_ns) {
      return absl::DeadlineExceededError(
          absl::StrCat("an append to the send volume has not returned for ",
                       running / kNsPerMs, " ms"));
    }
  }
  return status_;
}

int64_t OutboundChannel::appending_since_ns() const {
  absl::MutexLock lock(&mu_);
  return flushing_since_ns_;
}

OutboundChannel::Stats OutboundChannel::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::Status OutboundChannel::AwaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return removed_ || (!PendingLocked() && !flushing_);
  };
  if (mu_.AwaitWithTimeout(absl::Condition(&idle), timeout) && !removed_) {
    return absl::OkStatus();
  }
  if (removed_) return absl::CancelledError("outbound channel removed");
  return absl::DeadlineExceededError(absl::StrCat(
      "outbound channel not flushed within ", absl::FormatDuration(timeout),
      "; ", buffered_,
      " DATA bytes pending; last storage status: ", status_.ToString()));
}

}  // namespace diskwire
