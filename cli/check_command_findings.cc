// The judgements of `diskwire check` (cli/check_command.h): pure functions
// of what RunCheck measured.

#include <algorithm>
#include <cmath>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/check_command.h"
#include "cli/status_command.h"

namespace diskwire {
namespace {

Finding Ok(std::string text) { return {Verdict::kOk, std::move(text)}; }
Finding Warn(std::string text) { return {Verdict::kWarn, std::move(text)}; }
Finding Fail(std::string text) { return {Verdict::kFail, std::move(text)}; }

// mountinfo escapes blanks and backslashes as \ooo.
std::string Unescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        if (i + k >= s.size() || s[i + k] < '0' || s[i + k] > '7') {
          octal = false;
          break;
        }
        v = v * 8 + (s[i + k] - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool Within(const std::string& path, const std::string& mount_point) {
  return mount_point == "/" || path == mount_point ||
         absl::StartsWith(path, mount_point + "/");
}

bool HasOption(const std::string& options, absl::string_view option) {
  for (absl::string_view o : absl::StrSplit(options, ',')) {
    if (o == option) return true;
  }
  return false;
}

int64_t Percentile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * v.size()));
  return v[std::clamp<size_t>(i, 1, v.size()) - 1];
}

std::string Millis(int64_t us) {
  return absl::StrFormat("%.2f ms", us / 1000.0);
}

}  // namespace

bool IsNetworkType(uint64_t t) {
  switch (t) {
    case 0x6969:
    case 0x517B:
    case 0xFF534D42:
    case 0xFE534D42:
    case 0x00C36400:
    case 0x65735546:
    case 0x5346414F:
    case 0x01161970:
    case 0x7461636F:
    case 0x01021997:
    case 0x0BD00BD0:
      return true;
    default:
      return false;
  }
}

std::string FormatFinding(const Finding& f) {
  const char* prefix = f.verdict == Verdict::kOk     ? "ok"
                       : f.verdict == Verdict::kWarn ? "warn"
                                                     : "FAIL";
  return absl::StrCat(prefix, ": ", f.text);
}

absl::StatusOr<MountInfo> FindMount(const std::string& path,
                                    absl::string_view mountinfo) {
  std::optional<MountInfo> best;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 10 || dash == f.end() || f.end() - dash < 4) continue;
    MountInfo m{Unescape(f[4]), std::string(dash[1]),
                absl::StrCat(f[5], ",", dash[3])};
    if (!Within(path, m.mount_point)) continue;
    if (!best || m.mount_point.size() >= best->mount_point.size()) best = m;
  }
  if (!best) return absl::NotFoundError(absl::StrCat("no mount holds ", path));
  return *best;
}

std::string FilesystemTypeName(uint64_t t) {
  switch (t) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x58465342:
      return "XFS";
    case 0x9123683E:
      return "Btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    case 0x2FC12FC1:
      return "ZFS";
    case 0x6969:
      return "NFS";
    case 0x517B:
      return "SMB";
    case 0xFF534D42:
      return "CIFS";
    case 0xFE534D42:
      return "SMB2";
    case 0x00C36400:
      return "CephFS";
    case 0x65735546:
      return "FUSE";
    case 0x5346414F:
      return "AFS";
    case 0x01161970:
      return "GFS2";
    case 0x7461636F:
      return "OCFS2";
    case 0x01021997:
      return "9P";
    case 0x0BD00BD0:
      return "Lustre";
    default:
      return absl::StrFormat("unknown (statfs f_type 0x%x)", t);
  }
}

std::vector<Finding> FilesystemFindings(uint64_t f_type,
                                        const MountInfo& mount) {
  const std::string where =
      absl::StrCat(FilesystemTypeName(f_type), ", ", mount.fstype,
                   " mounted at ", mount.mount_point);
  const bool fuse = f_type == 0x65735546;
  const bool nfs = f_type == 0x6969;
  if (!IsNetworkType(f_type)) {
    return {Ok(absl::StrCat("filesystem: ", where,
                            ": local, inotify reports every append"))};
  }
  std::vector<Finding> out = {Warn(absl::StrCat(
      "filesystem: ", where,
      ": network/FUSE, another host's appends raise no inotify event; the "
      "engine polls every DISKWIRE_POLL_MS"))};
  if (fuse) {
    const bool cut = HasOption(mount.options, "attribute-timeout=0") &&
                     HasOption(mount.options, "entry-timeout=0");
    out.push_back(
        cut ? Ok("FUSE attribute cache off (attribute-timeout=0,"
                 "entry-timeout=0)")
            : Warn(absl::StrCat(
                  "FUSE: sizes of files another host appends to may be seen "
                  "only when the attribute cache expires (~1 s by default): "
                  "mount with -o attribute-timeout=0,entry-timeout=0",
                  absl::StrContains(mount.fstype, "gluster")
                      ? " and run `gluster volume set VOL "
                        "performance.stat-prefetch off`"
                      : "",
                  " (the options are not visible in mountinfo: check the "
                  "mount command)")));
  } else if (nfs) {
    const bool cut = HasOption(mount.options, "noac") ||
                     HasOption(mount.options, "actimeo=0") ||
                     (HasOption(mount.options, "acregmax=0") &&
                      HasOption(mount.options, "acdirmax=0"));
    out.push_back(cut ? Ok("NFS attribute cache off (actimeo=0 or noac)")
                      : Warn("NFS: attribute cache on, another host's "
                             "appends may be seen seconds late: mount with "
                             "-o actimeo=0 (or noac)"));
  }
  return out;
}

Finding FreeSpaceFinding(uint64_t free_bytes, uint64_t total_bytes,
                         uint64_t free_inodes, uint64_t total_inodes) {
  const std::string text = absl::StrCat(
      "free space: ", HumanBytes(free_bytes), " of ", HumanBytes(total_bytes),
      total_inodes > 0 ? absl::StrCat(", ", free_inodes, " inodes") : "");
  if (free_bytes < (uint64_t{64} << 20)) {
    return Fail(absl::StrCat(text, ": less than one 64 MiB segment"));
  }
  if (free_bytes < (uint64_t{1} << 30)) {
    return Warn(absl::StrCat(text, ": under 1 GiB; a long outage fills it"));
  }
  if (total_inodes > 0 && free_inodes < 1000) {
    return Warn(absl::StrCat(text, ": few inodes left"));
  }
  return Ok(text);
}

std::vector<Finding> LatencyFindings(const LatencyResult& r, bool network_fs,
                                     bool other_view, int64_t max_lag_ms,
                                     int64_t poll_ms, int64_t heartbeat_ms) {
  std::vector<Finding> out;
  const size_t seen = r.latency_us.size();
  if (r.fd_wakeups > 0) {
    out.push_back(
        Ok(absl::StrCat("change notification: the watcher fd fired "
                        "for ",
                        r.fd_wakeups, " reads")));
  } else if (seen > 0) {
    out.push_back(Warn(absl::StrCat(
        "change notification: the watcher fd never fired; appends were found "
        "by polling every ",
        absl::FormatDuration(r.poll_interval))));
  }
  if (seen == 0 || !r.error.empty()) {
    out.push_back(Fail(absl::StrCat("append->read: ", seen, " of ", r.appended,
                                    " appends read",
                                    r.error.empty() ? "" : ": ", r.error)));
    if (seen == 0) return out;
  }
  const int64_t p50 = Percentile(r.latency_us, 0.5);
  const int64_t p99 = Percentile(r.latency_us, 0.99);
  const int64_t max = Percentile(r.latency_us, 1.0);
  out.push_back(Ok(absl::StrCat("append->read latency over ", seen,
                                " appends: p50 ", Millis(p50), ", p99 ",
                                Millis(p99), ", max ", Millis(max))));
  const int64_t lag_floor_ms =
      std::max<int64_t>({(5 * p99 + 999) / 1000, poll_ms, 1});
  const std::string lag = absl::StrCat(
      "DISKWIRE_MAX_LAG_MS: this volume supports ", lag_floor_ms,
      " ms or more (5 x p99, at least DISKWIRE_POLL_MS); set to ", max_lag_ms);
  out.push_back(max_lag_ms >= lag_floor_ms
                    ? Ok(lag)
                    : Warn(absl::StrCat(lag, ": lag alarms will fire")));
  const std::string detect =
      absl::StrCat("DISKWIRE_DETECT_MS: failover takes about DETECT_MS + ",
                   Millis(p99), " here (the storage path's p99)");
  out.push_back(p99 <= 50'000 ? Ok(detect)
                              : Warn(absl::StrCat(detect,
                                                  ", more than the 50 ms the "
                                                  "design allows")));
  const int64_t peer_floor_ms = 2 * heartbeat_ms + (p99 + 999) / 1000;
  out.push_back(Ok(absl::StrCat(
      "DISKWIRE_PEER_TIMEOUT_MS: at least ", peer_floor_ms,
      " ms (2 x DISKWIRE_HEARTBEAT_MS ", heartbeat_ms, " + p99)")));
  if (network_fs) {
    out.push_back(
        poll_ms * 5 <= max_lag_ms
            ? Ok(absl::StrCat("DISKWIRE_POLL_MS ", poll_ms, ": adds up to ",
                              poll_ms, " ms per read on this filesystem"))
            : Warn(absl::StrCat("DISKWIRE_POLL_MS ", poll_ms,
                                " is over a fifth of DISKWIRE_MAX_LAG_MS ",
                                max_lag_ms,
                                ": polling alone uses the budget")));
    if (other_view) return out;
    out.push_back(Warn(
        "measured through this host's mount only: another host's appends may "
        "be seen later; give --reader-volume (another mount of the same "
        "storage) or run diskwire check on each host"));
  }
  return out;
}

}  // namespace diskwire
