// File: storage/channel.h
// Writing and tailing one channel of a Volume (volume.h): an append-only log
// of records, one per (session, direction) plus what the engine needs.

#ifndef DISKWIRE_STORAGE_CHANNEL_H_
#define DISKWIRE_STORAGE_CHANNEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/record.h"

namespace diskwire::storage {

enum class Durability {
  kNone,        // the OS writes back when it likes
  kInterval,    // fdatasync at the first Append after `sync_interval` passed
  kEveryBatch,  // fdatasync before Append returns
};

struct WriterOptions {
  Durability durability = Durability::kNone;
  absl::Duration sync_interval = absl::Milliseconds(100);
  uint64_t segment_bytes = 64ull << 20;  // rotate before exceeding this
};

// The one writer of a channel (enforced with a lock across processes and
// hosts that honour POSIX locks). Thread-compatible: one thread at a time.
class ChannelWriter {
 public:
  virtual ~ChannelWriter() = default;  // Close()s, ignoring errors

  // Appends `records` as one batch, in one write syscall when possible.
  // Readers see the whole batch or none of it. Stream offsets must not
  // decrease (InvalidArgument otherwise); a zero timestamp_ns is replaced by
  // the current CLOCK_REALTIME. ResourceExhausted on ENOSPC, Unavailable on
  // EIO: then nothing of the batch is visible and a later retry may succeed.
  // FailedPrecondition once the writer is broken (a failed rollback or
  // fsync): reopen the channel, which recovers it.
  virtual absl::Status Append(absl::Span<const Record> records) = 0;
  // Makes everything appended so far durable.
  virtual absl::Status Sync() = 0;
  // Deletes whole segments, except the active one, whose records all end at
  // or below `stream_offset`.
  virtual absl::Status TrimBelow(uint64_t stream_offset) = 0;
  // Releases the channel. Further calls fail with FailedPrecondition.
  virtual absl::Status Close() = 0;

  // The channel's last record: found by recovery on open, then the last
  // appended. nullopt for an empty channel.
  virtual std::optional<RecordHeader> last_record() const = 0;
  // Stream end (stream_offset + payload length) of the last record; 0 for an
  // empty channel. Backends override it; the default (for test doubles) only
  // knows last_record()'s stream_offset.
  virtual uint64_t end_offset() const {
    const std::optional<RecordHeader> last = last_record();
    return last ? last->stream_offset : 0;
  }
  // What opening the channel repaired or noticed (a discarded torn tail,
  // foreign files), one line each; empty when the channel was clean.
  virtual const std::vector<std::string>& recovery_notes() const = 0;
};

// Tails one channel. Thread-compatible.
class ChannelReader {
 public:
  virtual ~ChannelReader() = default;

  // Non-blocking. Appends to `*out` the newly available valid records (at
  // least one when any is available, then up to about `max_bytes` of payload)
  // and returns how many. 0 when nothing new: the channel may not exist yet,
  // or its tail may be torn or still being written. DataLoss naming the file
  // and offset on corruption (never delivered; the reader stays failed),
  // Unauthenticated on a bad MAC, NotFound once the channel was removed
  // under the reader (its writer gave it up: nothing more will come).
  virtual absl::StatusOr<size_t> ReadAvailable(std::vector<Record>* out,
                                               size_t max_bytes) = 0;

  // The consumer holds every byte below `stream_offset` (it came another way,
  // e.g. over the old TCP socket): segments entirely below it may have been
  // trimmed by the writer, and are skipped rather than reported as a gap.
  // Records below it may still be delivered.
  virtual void SkipTo(uint64_t stream_offset) = 0;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_CHANNEL_H_
