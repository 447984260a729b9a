// File: storage/dir_prune.h
// Reclaims what no live process needs from a directory volume: heartbeats of
// processes that stopped publishing, their inboxes, and channels that nobody
// has written for a while and that no live process names. Safe to run from
// several hosts at once: every removal tolerates a file already gone, and a
// channel whose writer still holds it is left alone.

#ifndef DISKWIRE_STORAGE_DIR_PRUNE_H_
#define DISKWIRE_STORAGE_DIR_PRUNE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct PruneOptions {
  // Older than this (by the pruner's clock): a process is dead, an inbox or a
  // channel abandoned. Far above any heartbeat interval and clock skew.
  int64_t stale_after_ms = 60'000;
  uint64_t now_ns = 0;  // CLOCK_REALTIME
  // Channels that a live process still uses, kept whatever their age.
  std::function<bool(absl::string_view channel)> channel_in_use;
};

struct PruneReport {
  std::vector<std::string> removed;   // "heartbeat X", "inbox X", "channel X"
  std::vector<std::string> problems;  // what could not be removed, and why
};

// `volume` is the directory volume at `root`.
absl::StatusOr<PruneReport> PruneDirVolume(const std::string& root,
                                           Volume& volume,
                                           const PruneOptions& options);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_PRUNE_H_
