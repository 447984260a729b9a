#include "cli/check_command.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "core/config_values.h"
#include "storage/dir_volume.h"
#include "storage/lun_device.h"
#include "storage/lun_volume.h"
#include "storage/volume_open.h"

namespace diskwire {
namespace {

const FlagSpec kFlags[] = {
    {"volume", true},   {"reader-volume", true}, {"samples", true},
    {"key-file", true}, {"help", false},
};

std::string ReadMountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Resolved(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? buf : path;
}

// Filesystem type, mount and free space of `path`. Sets *network.
std::vector<Finding> Filesystem(const std::string& path, bool* network) {
  std::vector<Finding> out;
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) {
    return {
        {Verdict::kFail, absl::StrCat("statfs ", path, ": ", strerror(errno))}};
  }
  const uint64_t type = static_cast<uint64_t>(fs.f_type);
  *network = IsNetworkType(type);
  absl::StatusOr<MountInfo> mount = FindMount(Resolved(path), ReadMountinfo());
  MountInfo m = mount.ok() ? *mount : MountInfo{"?", "?", ""};
  for (Finding& f : FilesystemFindings(type, m)) out.push_back(std::move(f));
  struct statvfs vfs;
  if (statvfs(path.c_str(), &vfs) != 0) {
    out.push_back({Verdict::kWarn,
                   absl::StrCat("statvfs ", path, ": ", strerror(errno))});
  } else {
    out.push_back(FreeSpaceFinding(uint64_t{vfs.f_bavail} * vfs.f_frsize,
                                   uint64_t{vfs.f_blocks} * vfs.f_frsize,
                                   vfs.f_favail, vfs.f_files));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<storage::Volume>> Open(const std::string& path,
                                                      const CheckOptions& o) {
  storage::DirVolumeOptions vo;
  vo.node = "diskwire-check";
  vo.mac_key = o.key;
  vo.file_ops = o.file_ops;
  return storage::OpenVolume(path, vo);
}

// Removes a probe channel. On failure, removes what is left with rmdir
// (the directory layout of docs/FORMAT.md) and returns a warning.
std::optional<Finding> Remove(storage::Volume& volume, const std::string& root,
                              const std::string& channel) {
  absl::Status s = volume.RemoveChannel(channel);
  if (s.ok()) return std::nullopt;
  const std::string dir = absl::StrCat(root, "/channels/", channel);
  const bool gone = rmdir(dir.c_str()) == 0;
  return Finding{
      Verdict::kWarn,
      absl::StrCat("removing probe channel ", channel, ": ", s.message(),
                   gone ? " (the empty directory was then removed: the "
                          "engine's channel cleanup fails the same way here)"
                        : absl::StrCat(" (left behind: ", dir, ")"))};
}

}  // namespace

// A LUN volume's layout and use; FAIL when it is not formatted.
std::vector<Finding> LunFindings(const std::string& path) {
  absl::StatusOr<storage::LunUsage> u = storage::ReadLunUsage(path);
  if (!u.ok()) return {{Verdict::kFail, std::string(u.status().message())}};
  const storage::LunGeometry& g = u->geometry;
  const uint64_t extents = uint64_t{g.slots} * g.extents_per_slot;
  std::vector<Finding> out;
  out.push_back(
      {Verdict::kOk,
       absl::StrCat("LUN volume: ", u->device_bytes,
                    " bytes, "
                    "logical block ",
                    u->align,
                    " bytes (every "
                    "access O_DIRECT, aligned to it), format ",
                    g.version,
                    g.flags & storage::kLunFlagKeyed ? ", keyed" : "")});
  const uint32_t free_slots = g.slots - u->live_slots - u->held_slots;
  out.push_back({free_slots == 0            ? Verdict::kFail
                 : free_slots < g.slots / 8 ? Verdict::kWarn
                                            : Verdict::kOk,
                 absl::StrCat("slots: ", u->live_slots, " live, ",
                              u->held_slots, " released or expired, ",
                              free_slots, " free of ", g.slots)});
  const uint64_t free_extents = extents - u->extents_in_use;
  out.push_back({free_extents < extents / 10 ? Verdict::kWarn : Verdict::kOk,
                 absl::StrCat("channel space: ", free_extents, " of ", extents,
                              " extents of ", g.extent_bytes, " bytes free (",
                              free_extents * g.extent_bytes >> 20, " MiB)")});
  return out;
}

std::vector<Finding> RunCheck(const CheckOptions& o) {
  std::vector<Finding> out;
  struct stat st;
  const bool lun = storage::LooksLikeLun(o.volume);
  if (lun) {
    out = LunFindings(o.volume);
    if (out.size() == 1 && out[0].verdict == Verdict::kFail) return out;
  } else if (stat(o.volume.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return {{Verdict::kFail,
             absl::StrCat(o.volume,
                          " is not a directory (create it, or mount "
                          "the shared storage there)")}};
  }
  // A LUN has no change notification: like a network filesystem, it is
  // polled.
  bool network = lun;
  if (!lun) {
    for (Finding& f : Filesystem(o.volume, &network)) out.push_back(f);
  }
  auto volume = Open(o.volume, o);
  if (!volume.ok()) {
    out.push_back({Verdict::kFail, absl::StrCat("opening the volume: ",
                                                volume.status().message())});
    return out;
  }
  std::unique_ptr<storage::Volume> reader_volume;
  if (!o.reader_volume.empty()) {
    bool reader_network = storage::LooksLikeLun(o.reader_volume);
    if (!reader_network) Filesystem(o.reader_volume, &reader_network);
    network = network || reader_network;
    auto r = Open(o.reader_volume, o);
    if (!r.ok()) {
      out.push_back({Verdict::kFail, absl::StrCat("opening --reader-volume: ",
                                                  r.status().message())});
      return out;
    }
    reader_volume = *std::move(r);
  }
  // Writability: a probe channel created, appended to and removed.
  const std::string probe =
      absl::StrCat("check-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
  absl::Status written;
  {
    auto writer = (*volume)->OpenWriter(probe, storage::WriterOptions{});
    storage::Record rec;
    rec.payload = "probe";
    written = writer.ok() ? (*writer)->Append({&rec, 1}) : writer.status();
    if (written.ok()) written = (*writer)->Close();
  }  // The writer is gone: the channel can be removed.
  if (!written.ok()) {
    out.push_back(
        {Verdict::kFail, absl::StrCat("not writable: ", written.message())});
    if (auto f = Remove(**volume, o.volume, probe)) out.push_back(*f);
    return out;
  }
  std::optional<Finding> removed = Remove(**volume, o.volume, probe);
  out.push_back(removed ? *removed
                        : Finding{Verdict::kOk,
                                  "writable: probe channel created, appended "
                                  "to and removed"});
  const std::string channel = probe + "-lag";
  LatencyResult r = MeasureLatency(
      **volume, reader_volume ? *reader_volume : **volume, channel, o.samples,
      absl::Milliseconds(o.poll_ms), o.per_sample, o.budget);
  Remove(**volume, o.volume, channel);
  for (Finding& f : LatencyFindings(r, network, reader_volume != nullptr,
                                    o.max_lag_ms, o.poll_ms, o.heartbeat_ms)) {
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

std::string Help() {
  return "usage: diskwire check [--volume V] [--reader-volume V2] "
         "[--samples N] [--key-file F]\n"
         "\n"
         "Tells whether a volume will serve: filesystem type and mount "
         "options,\n"
         "writability, free space, change notification, append->read latency\n"
         "(p50/p99 over N appends, default 200, read by another thread; "
         "through\n"
         "V2 when given: another mount of the same storage) and the "
         "DISKWIRE_*\n"
         "values it supports. One line per finding: ok:, warn: or FAIL:.\n"
         "\n"
         "  --volume V   default: DISKWIRE_VOLUME, else DISKWIRE_SEND_VOLUME\n"
         "Judged against DISKWIRE_MAX_LAG_MS, DISKWIRE_POLL_MS and\n"
         "DISKWIRE_HEARTBEAT_MS from the environment (else their defaults).\n"
         "\n"
         "Exit status: 0 the volume can serve, 1 a check FAILed, 2 usage.\n";
}

absl::Status EnvMillis(const char* name, int64_t lo, int64_t* out) {
  const char* v = getenv(name);
  if (v == nullptr) return absl::OkStatus();
  absl::StatusOr<int64_t> ms = ParseMilliseconds(name, v, lo, 3'600'000);
  if (!ms.ok()) return ms.status();
  *out = *ms;
  return absl::OkStatus();
}

absl::StatusOr<CheckOptions> ParseOptions(const ParsedFlags& flags) {
  CheckOptions o;
  if (!flags.positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument ", flags.positional[0]));
  }
  std::optional<std::string> volume = flags.Get("volume");
  for (const char* v : {"DISKWIRE_VOLUME", "DISKWIRE_SEND_VOLUME"}) {
    if (const char* e = getenv(v); !volume && e != nullptr && *e) volume = e;
  }
  if (!volume || volume->empty()) {
    return absl::InvalidArgumentError(
        "no volume: give --volume V or set DISKWIRE_VOLUME");
  }
  o.volume = *volume;
  o.reader_volume = flags.Get("reader-volume").value_or("");
  if (auto n = flags.Get("samples")) {
    if (!absl::SimpleAtoi(*n, &o.samples) || o.samples < 1 ||
        o.samples > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--samples: \"", *n, "\" is not a count in 1..100000"));
    }
  }
  for (auto [name, lo, out] :
       {std::tuple{"DISKWIRE_MAX_LAG_MS", 1, &o.max_lag_ms},
        std::tuple{"DISKWIRE_POLL_MS", 1, &o.poll_ms},
        std::tuple{"DISKWIRE_HEARTBEAT_MS", 10, &o.heartbeat_ms}}) {
    if (absl::Status s = EnvMillis(name, lo, out); !s.ok()) return s;
  }
  std::optional<std::string> key_file = flags.Get("key-file");
  if (const char* e = getenv("DISKWIRE_KEY_FILE"); !key_file && e && *e) {
    key_file = e;
  }
  if (key_file) {
    auto key = storage::LoadMacKeyFile(*key_file);
    if (!key.ok()) return key.status();
    o.key = *key;
  }
  return o;
}

}  // namespace

int CheckCommand(absl::Span<const std::string> args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, kFlags);
  if (flags.ok() && flags->Has("help")) {
    std::fputs(Help().c_str(), stdout);
    return 0;
  }
  absl::StatusOr<CheckOptions> o =
      flags.ok() ? ParseOptions(*flags)
                 : absl::StatusOr<CheckOptions>(flags.status());
  if (!o.ok()) {
    std::fprintf(stderr, "diskwire check: %s (see diskwire check --help)\n",
                 std::string(o.status().message()).c_str());
    return 2;
  }
  std::printf("checking %s%s%s\n", o->volume.c_str(),
              o->reader_volume.empty() ? "" : ", read through ",
              o->reader_volume.c_str());
  std::fflush(stdout);
  size_t failed = 0, warned = 0;
  for (const Finding& f : RunCheck(*o)) {
    failed += f.verdict == Verdict::kFail;
    warned += f.verdict == Verdict::kWarn;
    std::printf("%s\n", FormatFinding(f).c_str());
  }
  if (failed > 0) {
    std::printf("FAIL: %s cannot serve (%zu failed)\n", o->volume.c_str(),
                failed);
    return 1;
  }
  std::printf("ok: %s can serve (%zu warnings)\n", o->volume.c_str(), warned);
  return 0;
}

}  // namespace diskwire
