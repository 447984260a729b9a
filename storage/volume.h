// File: storage/volume.h
// The storage interface core/ uses: a Volume holds named channels (append-only
// logs of records), per-process heartbeats and per-process inboxes. The
// directory backend is OpenDirVolume() (dir_volume.h); a block-device backend
// can sit behind the same interface, so nothing here assumes files.

#ifndef DISKWIRE_STORAGE_VOLUME_H_
#define DISKWIRE_STORAGE_VOLUME_H_

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
  // Unauthenticated on a bad MAC.
  virtual absl::StatusOr<size_t> ReadAvailable(std::vector<Record>* out,
                                               size_t max_bytes) = 0;
};

struct Heartbeat {
  std::string process_id;
  std::string node;
  int64_t pid = 0;
  uint64_t time_ns = 0;   // CLOCK_REALTIME of the publish
  uint64_t sequence = 0;  // 1, 2, ... per publishing Volume object
  std::string payload;
};

struct HeartbeatListing {
  std::vector<Heartbeat> heartbeats;
  std::vector<std::string> problems;  // foreign or corrupt files, one line each
};

struct InboxMessage {
  std::string name;
  uint64_t time_ns = 0;
  std::string payload;
};

struct InboxListing {
  std::vector<InboxMessage> messages;  // sorted by name
  std::vector<std::string> problems;   // corrupt/foreign files (set aside)
};

struct WatcherOptions {
  enum class Mode {
    kAuto,     // inotify; plus polling when the volume is a network/FUSE fs
    kInotify,  // inotify only (local filesystems)
    kPoll,     // polling only
  };
  Mode mode = Mode::kAuto;
  absl::Duration poll_interval = absl::Milliseconds(10);
};

// Change notification for one event loop serving many readers: one inotify
// instance per watcher whatever the number of channels. Thread-compatible.
class VolumeWatcher {
 public:
  virtual ~VolumeWatcher() = default;

  // Readable (EPOLLIN) when Drain() has something; never fires for writes
  // made by other hosts on network filesystems.
  virtual int fd() const = 0;
  // How often the loop should also Drain() and read every watched channel:
  // absl::InfiniteDuration() when fd() is enough.
  virtual absl::Duration poll_interval() const = 0;

  // Channels need not exist yet.
  virtual absl::Status Watch(const std::string& channel) = 0;
  virtual absl::Status Unwatch(const std::string& channel) = 0;
  virtual absl::Status WatchInbox(const std::string& process_id) = 0;

  struct Changes {
    bool everything = false;  // lost events: treat every channel as changed
    bool inbox = false;
    std::vector<std::string> channels;  // no duplicates
  };
  // Non-blocking: reads pending events into `*out` (cleared first).
  virtual absl::Status Drain(Changes* out) = 0;
};

// Thread-safe; writers, readers and watchers it returns may outlive no
// Volume.
class Volume {
 public:
  virtual ~Volume() = default;

  // Channel names: [a-z0-9._-], 1..128 characters, not starting with '.'
  // (InvalidArgument otherwise). FailedPrecondition when another writer holds
  // the channel. Recovers a channel left by a dead writer.
  virtual absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenWriter(
      const std::string& channel, const WriterOptions& options) = 0;
  // Delivers records whose bytes end after `from_stream_offset` (and
  // zero-length records at or after it). The channel need not exist yet.
  virtual absl::StatusOr<std::unique_ptr<ChannelReader>> OpenReader(
      const std::string& channel, uint64_t from_stream_offset) = 0;
  // Deletes a channel nobody writes (FailedPrecondition while a writer holds
  // it). OK when it does not exist.
  virtual absl::Status RemoveChannel(const std::string& channel) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListChannels() = 0;

  // Atomically replaces the process's heartbeat. process_id: [A-Za-z0-9._-],
  // 1..128, not starting with '.'.
  virtual absl::Status PublishHeartbeat(const std::string& process_id,
                                        const std::string& payload) = 0;
  virtual absl::StatusOr<HeartbeatListing> ListHeartbeats() = 0;
  virtual absl::Status RemoveHeartbeat(const std::string& process_id) = 0;

  // Atomically creates message `name` (same rules as channel names) in the
  // inbox of `dst_process_id`. AlreadyExists if that name is pending there.
  virtual absl::Status PostToInbox(const std::string& dst_process_id,
                                   const std::string& name,
                                   const std::string& payload) = 0;
  // Reads and removes the pending messages of `process_id`.
  virtual absl::StatusOr<InboxListing> TakeInbox(
      const std::string& process_id) = 0;

  virtual absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewWatcher(
      const WatcherOptions& options) = 0;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_VOLUME_H_
