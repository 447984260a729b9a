// File: storage/volume.h
// The storage interface core/ uses: a Volume holds named channels (append-only
// logs of records), per-process heartbeats and per-process inboxes. The
// directory backend is OpenDirVolume() (dir_volume.h); a block-device backend
// can sit behind the same interface, so nothing here assumes files.

#ifndef DISKWIRE_STORAGE_VOLUME_H_
#define DISKWIRE_STORAGE_VOLUME_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/channel.h"
#include "storage/record.h"
#include "storage/volume_watcher.h"

namespace diskwire::storage {

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

// What a copier (diskwire mirror) needs to know of a channel besides its
// records.
struct ChannelStat {
  // Changes when the channel is removed and created again under its name.
  uint64_t identity = 0;
  // The writer trimmed every record that ends at or below it (0: none).
  uint64_t trimmed_below = 0;
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
  // NotFound when the channel does not exist.
  virtual absl::StatusOr<ChannelStat> StatChannel(
      const std::string& channel) = 0;

  // Atomically replaces the process's heartbeat. process_id: [A-Za-z0-9._-],
  // 1..128, not starting with '.'.
  virtual absl::Status PublishHeartbeat(const std::string& process_id,
                                        const std::string& payload) = 0;
  virtual absl::StatusOr<HeartbeatListing> ListHeartbeats() = 0;
  virtual absl::Status RemoveHeartbeat(const std::string& process_id) = 0;
  // Publishes another process's heartbeat as its publisher did (node, pid,
  // time and payload): what a mirror copies from one volume to another. The
  // sequence may read higher than `h.sequence` where the backend needs it to
  // grow.
  virtual absl::Status CopyHeartbeat(const Heartbeat& h) = 0;

  // Atomically creates message `name` (same rules as channel names) in the
  // inbox of `dst_process_id`. AlreadyExists if that name is pending there.
  virtual absl::Status PostToInbox(const std::string& dst_process_id,
                                   const std::string& name,
                                   const std::string& payload) = 0;
  // Reads and removes the pending messages of `process_id`.
  absl::StatusOr<InboxListing> TakeInbox(const std::string& process_id) {
    InboxListing out;
    absl::Status s = DeliverInbox(
        process_id,
        [&](InboxMessage m) {
          out.messages.push_back(std::move(m));
          return absl::OkStatus();
        },
        &out.problems);
    if (!s.ok()) return s;
    std::sort(out.messages.begin(), out.messages.end(),
              [](const InboxMessage& a, const InboxMessage& b) {
                return a.name < b.name;
              });
    return out;
  }
  // Hands the pending messages of `process_id` to `deliver`, removing each
  // one only after `deliver` returned OK (a mirror posts it to another
  // volume first). The first error stops it and is returned; that message
  // and the ones after it stay pending. Corrupt messages are set aside and
  // reported in `*problems`.
  virtual absl::Status DeliverInbox(
      const std::string& process_id,
      absl::FunctionRef<absl::Status(InboxMessage)> deliver,
      std::vector<std::string>* problems) = 0;
  // The process ids that have messages pending (or may have: a backend that
  // cannot tell cheaply lists every inbox it has).
  virtual absl::StatusOr<std::vector<std::string>> ListInboxes() = 0;

  virtual absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewWatcher(
      const WatcherOptions& options) = 0;

  // Around fork(): a backend with locks of its own takes them before, so
  // that the child never inherits one held by a thread it does not have, and
  // gives them back in both processes after. Called with the caller's own
  // locks held (they come first in the lock order).
  // The fds the backend keeps open for its whole life (a LUN's device): the
  // engine hides them from the application, whose close(), closefrom() or
  // dup2() onto them would otherwise take the volume away.
  virtual std::vector<int> HeldFds() const { return {}; }
  // A backend that leases what a process holds (a LUN's slots: lose the
  // lease and the channels written there are gone for readers) renews it
  // here. A process without a watcher to drain (VolumeWatcher::Drain renews
  // too), such as a mirror, calls it at least every second.
  virtual absl::Status KeepAlive() { return absl::OkStatus(); }

  virtual void BeforeFork() {}
  virtual void AfterForkParent() {}
  virtual void AfterForkChild() {}
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_VOLUME_H_
