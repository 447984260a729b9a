// File: core/writer_channel.h
// One session direction's outbound queues (core/writer.h runs them).

#ifndef DISKWIRE_CORE_WRITER_CHANNEL_H_
#define DISKWIRE_CORE_WRITER_CHANNEL_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "storage/record.h"
#include "storage/volume.h"

namespace diskwire {

class Writer;

struct WriterOptions {
  // DATA bytes a session may have buffered (queued or being appended) before
  // submitters wait: backpressure.
  size_t buffer_bytes = 1 << 20;
  // A buffer holding this many DATA bytes is flushed at once.
  size_t high_water_bytes = 256 << 10;
  // Longest time a DATA or ACK record waits for more to batch with it. 0: as
  // soon as the writer thread is free; batches still form while it is busy
  // appending (group commit). bench/core_bench_writer, 64-byte messages on a
  // local volume, submit -> appended p50: 6-44 us at 0, 130 us at 50 us,
  // 280 us at 200 us (timer slack adds ~50 us to every timed wait), against
  // the one-way target of 200 us for the whole storage path.
  int64_t flush_delay_ns = 0;
  // DATA payload per record (storage caps it at kMaxPayloadSize).
  size_t max_record_payload = 64 << 10;
  // Backoff between attempts after a failed Append.
  int64_t retry_min_ns = 1 * kNsPerMs;
  int64_t retry_max_ns = 1 * kNsPerSec;
  // An Append that has not returned after this long is a stall (a network
  // filesystem that hangs on one file): the channel reports it in status(),
  // and Writer::Supervise() gives the other channels a thread of their own.
  int64_t stall_ns = 2 * kNsPerSec;
  // Most writer threads at once: one, plus one per stalled Append up to this.
  int max_threads = 4;
};

// The outbound queues of one session direction: DATA (a byte buffer cut into
// records), ACK (only the newest ack offset matters; it rides in every
// record's header and gets a record of its own only when nothing else
// carries it), and control (HELLO, FAILOVER, FIN, RST, HEARTBEAT: flushed at
// once, in submission order relative to DATA). Nothing submitted is lost: a
// failed Append is retried with backoff, and the error is readable in
// status() meanwhile.
//
// Thread safety: every method is thread-safe. Submitters never wait for
// storage I/O, except SubmitData() when the buffer is full.
class OutboundChannel {
 public:
  OutboundChannel(const OutboundChannel&) = delete;
  OutboundChannel& operator=(const OutboundChannel&) = delete;

  // Copies as much of the stream bytes [offset, offset + bytes.size()) as the
  // buffer has room for and returns how many. The first DATA submitted fixes
  // the stream position (e.g. the failover offset F); every later one must
  // start where the previous ended (InvalidArgument otherwise). Cancelled
  // once the channel is removed.
  absl::StatusOr<size_t> TrySubmitData(uint64_t offset,
                                       absl::string_view bytes);
  // Like TrySubmitData() but waits for room until every byte is accepted.
  absl::Status SubmitData(uint64_t offset, absl::string_view bytes);

  // The reverse direction's delivered offset advanced (monotonic; older
  // values are ignored).
  void SubmitAck(uint64_t ack_offset);

  // Queues a control record after the DATA submitted so far. The writer fills
  // session id, direction, ack offset and time. InvalidArgument for DATA and
  // ACK records (use SubmitData / SubmitAck), and when `stream_offset` is
  // below the end of the DATA submitted or below an earlier control record's
  // offset (a channel's offsets never decrease). DATA, likewise, may not start
  // below the last control record's offset.
  absl::Status SubmitControl(storage::RecordType type, uint64_t stream_offset,
                             std::string payload = "");

  // The peer holds everything below `stream_offset`: the writer thread, the
  // channel's only user, trims the channel's segments below it after its next
  // append (monotonic).
  void RequestTrim(uint64_t stream_offset);
  // Called by the writer thread, without locks held, whenever an Append frees
  // buffer room (lets an event loop resume reading a socket pair).
  void SetRoomCallback(std::function<void()> callback);

  // DISKWIRE_DURABILITY=interval: the sink syncs inside an Append once the
  // interval has passed, so the last batch before a pause would wait for the
  // next Append. With an interval set, the channel syncs that long after its
  // last append when nothing more came.
  void SetIdleSync(int64_t interval_ns);

  // DATA bytes queued or being appended.
  size_t buffered_bytes() const;
  // End of the DATA appended successfully so far.
  uint64_t appended_offset() const;
  // OK; the last storage error while the writer retries; or
  // DeadlineExceeded while an Append has been running longer than stall_ns.
  absl::Status status() const;
  // When the Append in progress started, or -1 when none is.
  int64_t appending_since_ns() const;
  struct Stats {
    uint64_t appends = 0;         // successful Append calls
    uint64_t records = 0;         // records appended
    uint64_t failed_appends = 0;  // Append calls that failed (retried)
  };
  Stats stats() const;

  // Waits until everything submitted has been appended: OK, or
  // DeadlineExceeded (naming the last storage error) after `timeout`.
  absl::Status AwaitIdle(absl::Duration timeout);

 private:
  friend class Writer;
  OutboundChannel(Writer* writer, const WriterOptions& options,
                  storage::SessionId session_id, uint8_t direction,
                  storage::ChannelWriter* sink);

  // Writer-thread side: appends the batch if due at `now`; returns when the
  // channel is next due (INT64_MAX when nothing is pending).
  int64_t FlushIfDue(int64_t now);
  int64_t DueNs(int64_t now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the channel pending; returns true when the writer must be woken.
  bool NotePending(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Detach();

  Writer* const writer_;
  const WriterOptions options_;
  const storage::SessionId session_id_;
  const uint8_t direction_;

  mutable absl::Mutex mu_;
  storage::ChannelWriter* sink_ ABSL_GUARDED_BY(mu_);
  bool removed_ ABSL_GUARDED_BY(mu_) = false;
  // Records waiting to be taken, in order; DATA payloads grow in place.
  std::deque<storage::Record> queue_ ABSL_GUARDED_BY(mu_);
  // The batch being appended or retried. While flushing_ only the writer
  // thread touches it, without the lock.
  std::vector<storage::Record> inflight_;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  int64_t flushing_since_ns_ ABSL_GUARDED_BY(mu_) = -1;
  bool urgent_ ABSL_GUARDED_BY(mu_) = false;  // control record queued
  // SetIdleSync's sync when it is due (when to look again), or nullopt when
  // the channel is not idle with unsynced appends.
  std::optional<int64_t> SyncIfIdle(int64_t now);
  int64_t idle_sync_ns_ ABSL_GUARDED_BY(mu_) = 0;  // 0: never
  int64_t sync_due_ns_ ABSL_GUARDED_BY(mu_) = -1;  // -1: nothing unsynced
  bool data_started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t data_end_ ABSL_GUARDED_BY(mu_) = 0;       // next DATA offset
  uint64_t control_floor_ ABSL_GUARDED_BY(mu_) = 0;  // last control offset
  size_t buffered_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t ack_offset_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t ack_sent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pending_since_ns_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t retry_at_ns_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t backoff_ns_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t appended_offset_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t trim_below_ ABSL_GUARDED_BY(mu_) = 0;  // requested
  uint64_t trimmed_ = 0;                          // done (writer thread only)
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::function<void()> room_callback_ ABSL_GUARDED_BY(mu_);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_WRITER_CHANNEL_H_
