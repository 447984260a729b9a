#include "cli/status_command.h"

#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/flags.h"
#include "core/config_values.h"
#include "storage/dir_volume.h"
#include "storage/lun_device.h"
#include "storage/volume_open.h"

namespace diskwire {
namespace {

const FlagSpec kFlags[] = {
    {"volume", true},          {"watch", false},     {"json", false},
    {"format", true},          {"max-lag-ms", true}, {"heartbeat-ms", true},
    {"peer-timeout-ms", true}, {"key-file", true},   {"help", false},
};

// Folds one end's counts into the session's totals (see SessionStatus).
void Summarise(SessionStatus* s) {
  const SessionReport* c = s->client ? &s->client->report : nullptr;
  const SessionReport* v = s->server ? &s->server->report : nullptr;
  // Client→server bytes: the server received them; server→client: the client.
  for (auto [sender, receiver] : {std::pair{c, v}, std::pair{v, c}}) {
    if (receiver != nullptr) {
      s->bytes_network += receiver->bytes_in_network;
      s->bytes_storage += receiver->bytes_in_storage;
    } else if (sender != nullptr) {
      s->bytes_network += sender->bytes_out_network;
      s->bytes_storage += sender->bytes_out_storage;
    }
  }
  std::string client_state = c ? c->state : "-";
  std::string server_state = v ? v->state : "-";
  s->state = client_state == server_state || !c || !v
                 ? (c ? client_state : server_state)
                 : absl::StrCat(client_state, "/", server_state);
  for (const SessionReport* r : {c, v}) {
    if (r == nullptr) continue;
    s->failover_ms = std::max(s->failover_ms, r->failover_ms);
    s->lag_p50_us = std::max(s->lag_p50_us, r->lag_p50_us);
    s->lag_p99_us = std::max(s->lag_p99_us, r->lag_p99_us);
    s->lag_max_us = std::max(s->lag_max_us, r->lag_max_us);
    s->resumes = std::max(s->resumes, r->resumes);
  }
}

}  // namespace

absl::StatusOr<VolumeStatus> CollectStatus(storage::Volume& volume,
                                           const std::string& volume_path,
                                           uint64_t now_ns,
                                           const StatusLimits& limits) {
  absl::StatusOr<storage::HeartbeatListing> listing = volume.ListHeartbeats();
  if (!listing.ok()) return listing.status();
  VolumeStatus out;
  out.volume = volume_path;
  out.now_ns = now_ns;
  out.limits = limits;
  out.problems = listing->problems;
  std::sort(listing->heartbeats.begin(), listing->heartbeats.end(),
            [](const storage::Heartbeat& a, const storage::Heartbeat& b) {
              return std::tie(a.node, a.process_id) <
                     std::tie(b.node, b.process_id);
            });
  std::vector<ProcessReport> reports;
  for (storage::Heartbeat& hb : listing->heartbeats) {
    ProcessStatus p;
    p.age_ms =
        (static_cast<int64_t>(now_ns) - static_cast<int64_t>(hb.time_ns)) /
        1'000'000;
    p.alive = p.age_ms <= limits.stale_after_ms;
    absl::StatusOr<ProcessReport> report = DecodeProcessReport(hb.payload);
    if (report.ok()) {
      p.sessions = report->sessions.size();
      p.listeners = report->listeners;
      p.addresses = report->addresses;
      p.version = report->version;
      p.rejected_records = report->rejected_records;
      p.udp = report->udp;
      reports.push_back(*std::move(report));
    } else {
      p.problem = std::string(report.status().message());
      out.problems.push_back(
          absl::StrCat("heartbeats/", hb.process_id,
                       ".hb: undecodable payload: ", p.problem));
      reports.emplace_back();
    }
    hb.payload.clear();
    p.heartbeat = std::move(hb);
    out.processes.push_back(std::move(p));
  }
  std::map<std::string, SessionStatus> by_id;
  for (size_t i = 0; i < out.processes.size(); ++i) {
    for (const SessionReport& r : reports[i].sessions) {
      SessionStatus& s = by_id[SessionIdHex(r.id)];
      s.id = SessionIdHex(r.id);
      std::optional<SessionEnd>& end =
          r.role == Role::kClient ? s.client : s.server;
      if (end.has_value()) {
        // Two processes claim the same end: a restarted process whose old
        // heartbeat is still there, or a clash. Keep the fresher one.
        out.problems.push_back(
            absl::StrCat("session ", s.id, ": two ",
                         r.role == Role::kClient ? "client" : "server",
                         " ends (", end->process->heartbeat.process_id, " and ",
                         out.processes[i].heartbeat.process_id, ")"));
        if (end->process->age_ms <= out.processes[i].age_ms) continue;
      }
      end = SessionEnd{&out.processes[i], r};
      if (!r.problem.empty()) {
        out.problems.push_back(absl::StrCat(
            "session ", s.id, " (",
            r.role == Role::kClient ? "client" : "server", " ",
            out.processes[i].heartbeat.process_id, "): ",
            r.problem == "volume-full"
                ? "the volume is full: its writes wait for space"
            : r.problem == "volume-stalled"
                ? "an append to the volume hangs: its writes wait (other "
                  "sessions go on)"
            : r.problem == "volume-error"
                ? "cannot append to the volume (see that process's log)"
                : r.problem));
      }
    }
  }
  std::set<std::string> versions;
  for (const ProcessStatus& p : out.processes) {
    if (p.alive) versions.insert(p.version.empty() ? "(older)" : p.version);
  }
  if (versions.size() > 1) {
    out.problems.push_back(
        absl::StrCat("live processes run different diskwire versions: ",
                     absl::StrJoin(versions, ", ")));
  }
  for (auto& [id, s] : by_id) {
    Summarise(&s);
    s.lag_over_max = s.lag_max_us > limits.max_lag_ms * 1000;
    out.sessions.push_back(std::move(s));
  }
  CollectMirrorStatus(volume_path, volume, limits, &out);
  struct statvfs fs;
  if (statvfs(volume_path.c_str(), &fs) == 0) {
    out.volume_free_bytes = static_cast<int64_t>(fs.f_bavail * fs.f_frsize);
    out.volume_size_bytes = static_cast<int64_t>(fs.f_blocks * fs.f_frsize);
  }
  return out;
}

namespace {

std::string Help() {
  return "usage: diskwire status [--volume V] [--json | --format F]\n"
         "                       [--watch [SECONDS]]\n"
         "                       [--max-lag-ms N] [--heartbeat-ms N]\n"
         "                       [--peer-timeout-ms N] [--key-file F]\n"
         "\n"
         "Shows, from the volume alone, the processes using it (alive or stale "
         "by\n"
         "their heartbeat), and each session with both its ends: state, bytes "
         "via\n"
         "the network and via storage, offsets, failover time and "
         "storage-path\n"
         "lag (p50/p99/max), flagging sessions whose lag exceeds "
         "--max-lag-ms.\n"
         "Mirrors copying into the volume (mirror/*.status) are shown with "
         "their\n"
         "status file's age and their lag, flagged the same way.\n"
         "\n"
         "  --volume V          default: DISKWIRE_RECV_VOLUME, else "
         "DISKWIRE_VOLUME\n"
         "  --json              one JSON object (schema in "
         "docs/OPERATIONS.md)\n"
         "  --format F          text (default), json, or prometheus: the "
         "text\n"
         "                      exposition format for node_exporter's "
         "textfile\n"
         "                      collector (metrics in docs/OPERATIONS.md)\n"
         "  --watch [SECONDS]   redraw every SECONDS (default 2) until "
         "interrupted\n"
         "  --max-lag-ms N      default: DISKWIRE_MAX_LAG_MS, else 1000\n"
         "  --heartbeat-ms N    stale after 3 intervals; default\n"
         "                      DISKWIRE_HEARTBEAT_MS, else 1000\n"
         "  --peer-timeout-ms N stale after N ms instead\n"
         "  --key-file F        for a keyed volume; default DISKWIRE_KEY_FILE\n"
         "\n"
         "Exit status: 0 when the volume was read, 1 when not, 2 usage "
         "error.\n";
}

// A flag's value, else the variable's, else `fallback`, parsed as
// milliseconds with the variable's limits.
absl::StatusOr<int64_t> Millis(const ParsedFlags& flags, const char* flag,
                               const char* variable, int64_t fallback) {
  std::optional<std::string> v = flags.Get(flag);
  std::string name = absl::StrCat("--", flag);
  if (!v) {
    if (const char* e = getenv(variable)) v = e, name = variable;
  }
  if (!v) return fallback;
  return ParseMilliseconds(name, *v, 1, 3'600'000);
}

struct Options {
  std::string volume;
  std::string key;
  StatusLimits limits;
  bool json = false;
  bool prometheus = false;
  bool watch = false;
  int64_t interval_ms = 2000;
};

absl::StatusOr<Options> ParseOptions(const ParsedFlags& flags) {
  Options o;
  o.json = flags.Has("json");
  if (std::optional<std::string> format = flags.Get("format")) {
    if (*format == "json") {
      o.json = true;
    } else if (*format == "prometheus") {
      o.prometheus = true;
    } else if (*format != "text") {
      return absl::InvalidArgumentError(
          absl::StrCat("--format: bad value \"", *format,
                       "\" (want text, json or prometheus)"));
    }
    if (o.json && o.prometheus) {
      return absl::InvalidArgumentError(
          "--json and --format prometheus contradict");
    }
  }
  o.watch = flags.Has("watch");
  // `--watch [SECONDS]`: the optional period arrives as the one positional.
  if (!flags.positional.empty()) {
    const std::string& arg = flags.positional[0];
    double seconds;
    if (!o.watch || flags.positional.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument ", flags.positional.back()));
    }
    if (!absl::SimpleAtod(arg, &seconds) || !(seconds >= 0.1) ||
        seconds > 3600) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--watch: \"", arg, "\" is not a number of seconds in 0.1..3600"));
    }
    o.interval_ms = static_cast<int64_t>(seconds * 1000);
  }
  std::optional<std::string> volume = flags.Get("volume");
  if (!volume) {
    for (const char* v : {"DISKWIRE_RECV_VOLUME", "DISKWIRE_VOLUME"}) {
      if (const char* e = getenv(v); e != nullptr && *e != '\0') {
        volume = e;
        break;
      }
    }
  }
  if (!volume || volume->empty()) {
    return absl::InvalidArgumentError(
        "no volume: give --volume V or set DISKWIRE_VOLUME");
  }
  o.volume = *volume;
  auto lag = Millis(flags, "max-lag-ms", "DISKWIRE_MAX_LAG_MS", 1000);
  auto hb = Millis(flags, "heartbeat-ms", "DISKWIRE_HEARTBEAT_MS", 1000);
  if (!lag.ok()) return lag.status();
  if (!hb.ok()) return hb.status();
  o.limits.max_lag_ms = *lag;
  o.limits.stale_after_ms = 3 * *hb;
  if (auto t = flags.Get("peer-timeout-ms")) {
    auto ms = ParseMilliseconds("--peer-timeout-ms", *t, 1, 3'600'000);
    if (!ms.ok()) return ms.status();
    o.limits.stale_after_ms = *ms;
  }
  std::optional<std::string> key_file = flags.Get("key-file");
  if (!key_file) {
    if (const char* e = getenv("DISKWIRE_KEY_FILE"); e && *e) key_file = e;
  }
  if (key_file) {
    auto key = storage::LoadMacKeyFile(*key_file);
    if (!key.ok()) return key.status();
    o.key = *key;
  }
  return o;
}

uint64_t WallNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

// One look at the volume, printed. False when the volume could not be read.
bool ShowOnce(storage::Volume& volume, const Options& o) {
  absl::StatusOr<VolumeStatus> status =
      CollectStatus(volume, o.volume, WallNs(), o.limits);
  if (!status.ok()) {
    std::fprintf(stderr, "diskwire status: %s: %s\n", o.volume.c_str(),
                 std::string(status.status().message()).c_str());
    return false;
  }
  std::string text = o.json         ? FormatStatusJson(*status)
                     : o.prometheus ? FormatStatusPrometheus(*status)
                                    : FormatStatusText(*status);
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
  return true;
}

}  // namespace

int StatusCommand(absl::Span<const std::string> args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, kFlags);
  if (flags.ok() && flags->Has("help")) {
    std::fputs(Help().c_str(), stdout);
    return 0;
  }
  absl::StatusOr<Options> o = flags.ok()
                                  ? ParseOptions(*flags)
                                  : absl::StatusOr<Options>(flags.status());
  if (!o.ok()) {
    std::fprintf(stderr, "diskwire status: %s (see diskwire status --help)\n",
                 std::string(o.status().message()).c_str());
    return 2;
  }
  // Never create a volume by looking at it: OpenDirVolume would.
  struct stat st;
  const bool lun = storage::LooksLikeLun(o->volume);
  if (!lun && (stat(o->volume.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
    std::fprintf(stderr, "diskwire status: %s: not a directory\n",
                 o->volume.c_str());
    return 1;
  }
  if (!lun && stat((o->volume + "/VOLUME").c_str(), &st) != 0) {
    std::fprintf(stderr,
                 "diskwire status: %s: not a diskwire volume (no VOLUME "
                 "marker; nothing has used it yet)\n",
                 o->volume.c_str());
    return 1;
  }
  storage::DirVolumeOptions options;
  options.mac_key = o->key;
  absl::StatusOr<std::unique_ptr<storage::Volume>> volume =
      storage::OpenVolume(o->volume, options);
  if (!volume.ok()) {
    std::fprintf(stderr, "diskwire status: %s\n",
                 std::string(volume.status().message()).c_str());
    return 1;
  }
  if (!o->watch) return ShowOnce(**volume, *o) ? 0 : 1;
  for (;;) {
    // Plain text, no curses: clear the screen on a terminal, else separate.
    if (isatty(STDOUT_FILENO) && !o->json) std::fputs("\033[H\033[2J", stdout);
    if (!ShowOnce(**volume, *o)) return 1;
    if (!o->json && !isatty(STDOUT_FILENO)) std::fputs("\n", stdout);
    std::fflush(stdout);
    poll(nullptr, 0, static_cast<int>(o->interval_ms));  // the redraw period
  }
}

}  // namespace diskwire
