#include "storage/dir_prune.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "storage/dir_layout.h"

namespace diskwire::storage {
namespace {

namespace fs = std::filesystem;

uint64_t MtimeNs(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
         static_cast<uint64_t>(st.st_mtim.tv_nsec);
}

// Realtime ns of the newest entry in `dir` (or of `dir` itself); 0 when it
// cannot be read.
uint64_t NewestWriteNs(const fs::path& dir) {
  uint64_t newest = MtimeNs(dir.string());
  if (newest == 0 || fs::is_symlink(dir)) return newest;  // never followed
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    newest = std::max(newest, MtimeNs(entry.path().string()));
  }
  return newest;
}

}  // namespace

absl::StatusOr<PruneReport> PruneDirVolume(const std::string& root,
                                           Volume& volume,
                                           const PruneOptions& options) {
  PruneReport report;
  const uint64_t stale_ns =
      static_cast<uint64_t>(options.stale_after_ms) * 1'000'000;
  auto stale = [&](uint64_t t) {
    return t != 0 && options.now_ns > t && options.now_ns - t > stale_ns;
  };
  absl::StatusOr<HeartbeatListing> listing = volume.ListHeartbeats();
  if (!listing.ok()) return listing.status();
  std::set<std::string> live;
  for (const Heartbeat& hb : listing->heartbeats) {
    if (!stale(hb.time_ns)) {
      live.insert(hb.process_id);
      continue;
    }
    absl::Status removed = volume.RemoveHeartbeat(hb.process_id);
    if (removed.ok()) {
      report.removed.push_back(absl::StrCat("heartbeat ", hb.process_id));
    } else {
      report.problems.push_back(
          absl::StrCat("heartbeat ", hb.process_id, ": ", removed.message()));
    }
  }
  // An inbox is its process's; without a live heartbeat and untouched for
  // the whole bound, nobody reads it again.
  std::error_code ec;
  const fs::path inboxes = fs::path(root) / kInboxDir;
  for (const auto& entry : fs::directory_iterator(inboxes, ec)) {
    const std::string process = entry.path().filename().string();
    if (live.count(process) || !stale(NewestWriteNs(entry.path()))) continue;
    std::error_code rm_ec;
    fs::remove_all(entry.path(), rm_ec);
    if (rm_ec) {
      report.problems.push_back(
          absl::StrCat("inbox ", process, ": ", rm_ec.message()));
    } else {
      report.removed.push_back(absl::StrCat("inbox ", process));
    }
  }
  absl::StatusOr<std::vector<std::string>> channels = volume.ListChannels();
  if (!channels.ok()) return channels.status();
  for (const std::string& channel : *channels) {
    if (options.channel_in_use && options.channel_in_use(channel)) continue;
    if (!stale(NewestWriteNs(fs::path(root) / kChannelsDir / channel)))
      continue;
    absl::Status removed = volume.RemoveChannel(channel);
    if (removed.ok()) {
      report.removed.push_back(absl::StrCat("channel ", channel));
    } else {
      report.problems.push_back(
          absl::StrCat("channel ", channel, ": ", removed.message()));
    }
  }
  return report;
}

}  // namespace diskwire::storage
