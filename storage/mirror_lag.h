// File: storage/mirror_lag.h
// The latency bound of claim 12 as `diskwire mirror` measures it: for every
// record copied, now − the record's timestamp_ns (its write time on the
// source host), kept per channel in a window of recent samples, summarised
// as p50/p99/max per channel and overall, and written to the target as
// mirror/<name>.status. Thread-compatible.

#ifndef DISKWIRE_STORAGE_MIRROR_LAG_H_
#define DISKWIRE_STORAGE_MIRROR_LAG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct LagSummary {
  uint64_t samples = 0;  // in the window
  int64_t p50_ns = 0, p99_ns = 0, max_ns = 0;
};

class LagStats {
 public:
  // Keeps the last `window` samples of each channel.
  explicit LagStats(size_t window = 4096) : window_(window) {}

  // A negative lag (clocks apart) counts as 0.
  void Add(const std::string& channel, int64_t lag_ns);
  void Forget(const std::string& channel) { windows_.erase(channel); }

  LagSummary Channel(const std::string& channel) const;
  LagSummary Overall() const;
  std::vector<std::string> Channels() const;

 private:
  struct Window {
    std::vector<int64_t> samples;  // ring of up to window_ samples
    size_t next = 0;
  };
  static LagSummary Summarise(std::vector<int64_t> samples);
  size_t window_;
  std::map<std::string, Window> windows_;
};

// What the status file says besides the lag.
struct MirrorStatusInfo {
  std::string name, from, to;
  uint64_t now_ns = 0;
  uint64_t records = 0, bytes = 0, target_full_retries = 0;
  std::map<std::string, std::string> channel_errors;
  std::vector<std::string> problems;
};

// The status file's text: "key value" lines, e.g.
//   mirror default
//   lag_ms p50 0.41 p99 2.10 max 3.00 samples 812
//   channel s-...-c2s lag_ms p50 0.40 p99 2.00 max 3.00 samples 400 state ok
//   channel bad lag_ms ... state error: <file> offset 107: record checksum...
std::string MirrorStatusText(const MirrorStatusInfo& info, const LagStats& lag);

// A LUN has no files: there the status text is the newest record of this
// channel of the target, "mirror.<name>.status".
std::string MirrorStatusChannel(const std::string& name);
// The mirror name of such a channel; nullopt for any other channel.
std::optional<std::string> MirrorNameOfStatusChannel(
    const std::string& channel);
// The newest status text in channel MirrorStatusChannel(name) of `volume`.
// NotFound when there is none.
absl::StatusOr<std::string> ReadMirrorStatusRecord(Volume& volume,
                                                   const std::string& name);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_LAG_H_
