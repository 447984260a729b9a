// File: storage/dir_watcher.h
// VolumeWatcher of the directory backend: one inotify instance for all
// watched channels and the inbox, plus timed polling on filesystems where
// other hosts' writes raise no inotify event (internal to dir_volume).

#ifndef DISKWIRE_STORAGE_DIR_WATCHER_H_
#define DISKWIRE_STORAGE_DIR_WATCHER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/dir_channel.h"
#include "storage/volume.h"

namespace diskwire::storage {

// True when `path` is on a network, cluster or FUSE filesystem (statfs
// f_type), where inotify misses other hosts' writes.
absl::StatusOr<bool> IsNetworkFilesystem(const std::string& path);

absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewDirVolumeWatcher(
    const DirContext& ctx, const WatcherOptions& options);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_WATCHER_H_
