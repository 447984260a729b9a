// File: storage/volume_watcher.h
// Change notification for the engine's event loop (see Volume::NewWatcher).

#ifndef DISKWIRE_STORAGE_VOLUME_WATCHER_H_
#define DISKWIRE_STORAGE_VOLUME_WATCHER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace diskwire::storage {

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

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_VOLUME_WATCHER_H_
