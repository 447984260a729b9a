// File: cli/check_command.h
// `diskwire check --volume V [--reader-volume V2] [--samples N]`: whether a
// volume will serve before an outage proves otherwise. One line per finding,
// prefixed ok/warn/FAIL: the filesystem (statfs f_type and the mount's type
// and options, with the options that cut a network filesystem's attribute
// cache), writability (a probe channel created and removed), free space,
// whether a watcher's fd fires on appends, the append→read latency (p50/p99
// over N appends read by another thread, through V2 when given: another
// mount of the same storage), and the DISKWIRE_* values that latency
// supports.
//
// Thread safety: plain functions; RunCheck starts and joins a reader thread.

#ifndef DISKWIRE_CLI_CHECK_COMMAND_H_
#define DISKWIRE_CLI_CHECK_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/file_ops.h"
#include "storage/volume.h"

namespace diskwire {

enum class Verdict { kOk, kWarn, kFail };

struct Finding {
  Verdict verdict;
  std::string text;  // one line, without the prefix
};

// "ok: text", "warn: text" or "FAIL: text".
std::string FormatFinding(const Finding& f);

// The mount holding a path, from /proc/self/mountinfo.
struct MountInfo {
  std::string mount_point;
  std::string fstype;   // "ext4", "fuse.glusterfs", "nfs4", ...
  std::string options;  // mount and super options, comma-separated
};

// The longest mount point that is a prefix of `path` (absolute, resolved) in
// mountinfo-formatted `text`; NotFound when none.
absl::StatusOr<MountInfo> FindMount(const std::string& path,
                                    absl::string_view mountinfo);

// A statfs f_type as a name: "ext2/3/4", "tmpfs", "FUSE", "NFS", ...; hex
// for unknown magic numbers.
std::string FilesystemTypeName(uint64_t f_type);

// Network, cluster and FUSE filesystems, where other hosts' writes raise no
// inotify event (the list of storage/dir_watcher.cc).
bool IsNetworkType(uint64_t f_type);

// What the filesystem means for diskwire: local (inotify is enough) or a
// network/FUSE mount, with the mount options that cut its attribute cache.
std::vector<Finding> FilesystemFindings(uint64_t f_type,
                                        const MountInfo& mount);

// Free space: FAIL under one segment (64 MiB), warn under 1 GiB or 1000
// free inodes (0 total inodes: the filesystem does not count them).
Finding FreeSpaceFinding(uint64_t free_bytes, uint64_t total_bytes,
                         uint64_t free_inodes, uint64_t total_inodes);

// Append→read latency measured by MeasureLatency.
struct LatencyResult {
  size_t appended = 0;
  std::vector<int64_t> latency_us;  // one per append seen, in order
  size_t fd_wakeups = 0;            // reads that followed the watcher fd firing
  size_t poll_wakeups = 0;  // reads that followed a poll-interval timeout
  absl::Duration poll_interval = absl::InfiniteDuration();
  std::string error;  // why the measurement stopped early; "" if it did not
};

// Appends `samples` records one at a time to `channel` of `writer_volume`
// and waits (at most `per_sample` each, `budget` in all) until a reader
// thread on `reader_volume` (kAuto watcher, `poll_interval`) has read each.
LatencyResult MeasureLatency(storage::Volume& writer_volume,
                             storage::Volume& reader_volume,
                             const std::string& channel, int samples,
                             absl::Duration poll_interval,
                             absl::Duration per_sample, absl::Duration budget);

// What the measurement says about the watcher and the DISKWIRE_* values
// (current ones from the environment, else the defaults). `other_view`: the
// reader used another mount than the writer.
std::vector<Finding> LatencyFindings(const LatencyResult& r, bool network_fs,
                                     bool other_view, int64_t max_lag_ms,
                                     int64_t poll_ms, int64_t heartbeat_ms);

struct CheckOptions {
  std::string volume;
  std::string reader_volume;  // "": the same path
  std::string key;            // MAC key, or ""
  int samples = 200;
  absl::Duration per_sample = absl::Seconds(2);
  absl::Duration budget = absl::Seconds(15);
  int64_t max_lag_ms = 1000, poll_ms = 5, heartbeat_ms = 1000;
  storage::FileOps* file_ops = nullptr;  // for tests; nullptr: the real ones
};

// Every finding, in the order above. Stops after a FAIL that makes the rest
// meaningless (a volume that cannot be opened or written).
std::vector<Finding> RunCheck(const CheckOptions& options);

// The `check` subcommand: 0 when the volume can serve, 1 when a check
// FAILed, 2 for a usage error.
int CheckCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_CHECK_COMMAND_H_
