#include "core/volume_prune.h"

#include <set>

#include "core/identity.h"
#include "core/session_report.h"

namespace diskwire {

absl::StatusOr<storage::PruneReport> PruneVolume(const std::string& root,
                                                 storage::Volume& volume,
                                                 uint64_t now_ns,
                                                 int64_t stale_after_ms) {
  absl::StatusOr<storage::HeartbeatListing> listing = volume.ListHeartbeats();
  if (!listing.ok()) return listing.status();
  // Sessions a live process lists: "s-<id>-" prefixes of their channels.
  std::set<std::string> listed;
  // Tags of live UDP relays: "u-<sender>-<receiver>" channels are theirs.
  std::set<std::string> udp_tags;
  const uint64_t stale_ns = static_cast<uint64_t>(stale_after_ms) * 1'000'000;
  bool unreadable = false;
  for (const storage::Heartbeat& hb : listing->heartbeats) {
    if (now_ns > hb.time_ns && now_ns - hb.time_ns > stale_ns) continue;
    auto report = DecodeProcessReport(hb.payload);
    if (!report.ok()) {
      unreadable = true;  // a live process we cannot read: keep every channel
      continue;
    }
    for (const SessionReport& s : report->sessions)
      listed.insert("s-" + SessionIdHex(s.id) + "-");
    if (!report->udp.tag.empty()) udp_tags.insert(report->udp.tag);
  }
  storage::PruneOptions options;
  options.stale_after_ms = stale_after_ms;
  options.now_ns = now_ns;
  options.channel_in_use = [&](absl::string_view channel) {
    if (unreadable) return true;
    constexpr size_t kTag = 16;
    if (channel.size() == 2 + kTag + 1 + kTag && channel.substr(0, 2) == "u-") {
      return udp_tags.count(std::string(channel.substr(2, kTag))) > 0 ||
             udp_tags.count(std::string(channel.substr(3 + kTag))) > 0;
    }
    const size_t prefix = 2 + 32 + 1;  // "s-" hex "-"
    return channel.size() >= prefix &&
           listed.count(std::string(channel.substr(0, prefix))) > 0;
  };
  return storage::PruneDirVolume(root, volume, options);
}

}  // namespace diskwire
