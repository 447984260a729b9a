// File: cli/status_command.h
// `diskwire status [--volume V] [--watch [SECONDS]] [--json] [--max-lag-ms N]
// [--heartbeat-ms N] [--peer-timeout-ms N] [--key-file F]`: what the volume
// alone says about the processes and sessions that use it, so that any host
// mounting it can look. Processes come from their heartbeats (alive or
// stale), sessions from the reports inside them (core/session_report.h); the
// two ends of a session are matched by session id; mirrors copying into the
// volume from their mirror/<name>.status files. Foreign or corrupt files
// are listed as problems, never fatal. The JSON schema is in
// docs/OPERATIONS.md.
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_STATUS_COMMAND_H_
#define DISKWIRE_CLI_STATUS_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/session_report.h"
#include "storage/volume.h"

namespace diskwire {

// The thresholds status judges against.
struct StatusLimits {
  int64_t stale_after_ms = 3000;  // heartbeat older than this: stale
  int64_t max_lag_ms = 1000;      // DISKWIRE_MAX_LAG_MS (claim 12)
  // A mirror rewrites its status file every second: older than this, stale.
  int64_t mirror_stale_after_ms = 5000;
};

// One process, from its heartbeat.
struct ProcessStatus {
  storage::Heartbeat heartbeat;  // payload cleared
  int64_t age_ms = 0;            // now - heartbeat time (clocks may differ)
  bool alive = false;
  size_t sessions = 0;
  // Its listening sockets that diskwire covers, and its host's addresses (what
  // a wildcard bind stands for).
  std::vector<std::string> listeners;
  std::string addresses;
  std::string version;  // diskwire's; "" from a version that did not say
  uint64_t rejected_records = 0;  // what it read from the volume and refused
  ProcessReport::Udp udp;         // its UDP relay (tag "" when it has none)
  std::string problem;  // why its payload could not be decoded; "" if fine
};

// One end of a session, as its process reported it.
struct SessionEnd {
  const ProcessStatus* process = nullptr;  // points into VolumeStatus
  SessionReport report;
};

// Both ends of one session, matched by id; an end may be missing (its peer
// has no diskwire, or publishes to another volume).
struct SessionStatus {
  std::string id;  // 32 hex digits
  std::optional<SessionEnd> client, server;
  std::string state;  // "STORAGE", or "CLIENT/SERVER" states when they differ
  // Stream bytes over each path, both directions, each counted once: the
  // receiving end's count (new bytes only), else the sending end's.
  uint64_t bytes_network = 0;
  uint64_t bytes_storage = 0;
  int64_t failover_ms = -1;  // largest of the ends'; -1 if none
  int64_t lag_p50_us = -1, lag_p99_us = -1, lag_max_us = -1;  // worst end
  bool lag_over_max = false;  // lag_max_us above the limit
  uint64_t resumes = 0;       // back on the network, as its ends count
};

// One `diskwire mirror` copying into this volume, from its
// mirror/<name>.status file (docs/REPLICATION.md).
struct MirrorStatus {
  std::string name, from, to;
  uint64_t updated_ns = 0;
  int64_t age_ms = 0;  // now - updated_ns (clocks may differ)
  bool stale = false;  // age_ms above limits.mirror_stale_after_ms
  uint64_t records = 0, bytes = 0, samples = 0;
  int64_t lag_p50_us = 0, lag_p99_us = 0, lag_max_us = 0;  // all channels
  size_t channels = 0, channels_in_error = 0;
  bool lag_over_max = false;  // lag_max_us above limits.max_lag_ms
};

struct VolumeStatus {
  std::string volume;
  uint64_t now_ns = 0;
  StatusLimits limits;
  std::vector<ProcessStatus> processes;  // by node, then process id
  std::vector<SessionStatus> sessions;   // by id
  std::vector<MirrorStatus> mirrors;     // by name
  std::vector<std::string> problems;     // foreign/corrupt files, payloads
  // The filesystem holding the volume (statvfs); -1 when it cannot be read.
  int64_t volume_free_bytes = -1, volume_size_bytes = -1;
};

// Lists `volume`'s heartbeats and `volume_path`/mirror/*.status at
// wall-clock time `now_ns` and builds the picture. Only a failure to list the
// heartbeats at all is an error; a corrupt or foreign status file (or a
// mirror's reported channel error) is a problem.
absl::StatusOr<VolumeStatus> CollectStatus(storage::Volume& volume,
                                           const std::string& volume_path,
                                           uint64_t now_ns,
                                           const StatusLimits& limits);

// Adds `volume_path`/mirror/*.status to out->mirrors (by name), judged at
// out->now_ns against `limits`; other files there (not directories), files
// that do not parse, and the mirrors' own channel errors and problems go to
// out->problems. A missing mirror/ directory adds nothing. On a LUN
// (`volume`), the mirrors' status channels instead. Part of CollectStatus.
void CollectMirrorStatus(const std::string& volume_path,
                         storage::Volume& volume, const StatusLimits& limits,
                         VolumeStatus* out);

// Aligned columns with readable units, ending in a newline.
std::string FormatStatusText(const VolumeStatus& status);
// One JSON object (schema "diskwire-status 1"), ending in a newline.
std::string FormatStatusJson(const VolumeStatus& status);
// The Prometheus text exposition format (version 0.0.4), for
// node_exporter's textfile collector (docs/OPERATIONS.md lists the metrics).
std::string FormatStatusPrometheus(const VolumeStatus& status);

// "1.5 KiB", "12.0 MiB", "17 B".
std::string HumanBytes(uint64_t bytes);

// The `status` subcommand. Exit status 0 when the volume was read, 1 when
// not, 2 for a usage error.
int StatusCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_STATUS_COMMAND_H_
