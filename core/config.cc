#include "core/config.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/config_values.h"

namespace diskwire {
namespace {

constexpr absl::string_view kPrefix = "DISKWIRE_";

constexpr VariableInfo kVariables[] = {
    {"DISKWIRE_VOLUME", "PATH", "(required)",
     "Shared volume directory both hosts write and read; "
     "shorthand for SEND_VOLUME and RECV_VOLUME being the same."},
    {"DISKWIRE_SEND_VOLUME", "PATH", "(unset)",
     "Where this host writes records, when storage replicates it elsewhere; "
     "needs RECV_VOLUME and excludes VOLUME."},
    {"DISKWIRE_RECV_VOLUME", "PATH", "(unset)",
     "Where this host reads its peers' records (the replica of their send "
     "volume)."},
    {"DISKWIRE_SELECT", "RULES", "(required)",
     "Which TCP connections diskwire carries: PORT, HOST:PORT, CIDR:PORT, "
     "[IPV6/LEN]:PORT, * wildcards, LO-HI port ranges, comma-separated; a "
     "rule prefixed udp: selects UDP datagrams (udp:5405)."},
    {"DISKWIRE_MODE", "failover|storage", "failover",
     "failover: TCP while it works, the volume after it fails; storage: every "
     "selected byte over the volume from the first."},
    {"DISKWIRE_DETECT_MS", "MS", "2000",
     "Failure detection bound: unacknowledged data older than this means the "
     "network failed (50..600000)."},
    {"DISKWIRE_PEER_TIMEOUT_MS", "MS", "10000",
     "A peer whose heartbeat is older than this is dead (at least twice "
     "HEARTBEAT_MS, up to 3600000)."},
    {"DISKWIRE_MAX_LAG_MS", "MS", "1000",
     "Alarmed bound on storage-path latency: a record read later than this "
     "after it was written is reported (POLL_MS..3600000)."},
    {"DISKWIRE_HEARTBEAT_MS", "MS", "1000",
     "Interval of this process's heartbeat on the volume (10..60000)."},
    {"DISKWIRE_POLL_MS", "MS", "5",
     "How often the volume is re-read for new records when no change "
     "notification arrives, as on network filesystems (1..10000)."},
    {"DISKWIRE_REPLAY_CAP", "SIZE", "4M",
     "Per-connection buffer of sent bytes kept until the peer has them; "
     "send() blocks when full (64K..1G, suffix K, M or G)."},
    {"DISKWIRE_RESUME", "on|off", "on",
     "on: a session carried over the volume moves back to a new TCP "
     "connection between the two engines when the network heals."},
    {"DISKWIRE_RESUME_PORT", "PORT|LO-HI", "0",
     "Where this process listens for resume connections: 0 for a port the "
     "kernel picks, or a port (range) to open in a firewall."},
    {"DISKWIRE_DURABILITY", "none|batch|interval[:MS]", "none",
     "fsync of written records: never, after every batch, or at most every "
     "MS milliseconds (default 100)."},
    {"DISKWIRE_KEY_FILE", "PATH", "(unset)",
     "File holding the secret key (32 raw bytes, or 64 hex digits): records "
     "are authenticated with it, not only checksummed."},
    {"DISKWIRE_NODE", "NAME", "hostname",
     "This host's name on the volume: 1 to 64 of A-Z a-z 0-9 . _ -, not "
     "starting with ."},
    {"DISKWIRE_LOG", "stderr|syslog|off|/PATH", "(unset)",
     "Where diskwire's log lines go. Unset: warnings and errors to stderr, "
     "events to the system log. stderr or syslog: every line there; a file "
     "is appended to."},
    {"DISKWIRE_LOG_LEVEL", "error|warn|info|debug", "info",
     "The least severe log lines written."},
    {"DISKWIRE_ON_ERROR", "fail|passthrough", "fail",
     "With a bad configuration: fail (the error line, and no connection is "
     "carried) or passthrough (the error line, then run without diskwire)."},
};

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = up;
    }
  }
  return row[b.size()];
}

absl::Status CheckKnownNames(const EnvLookup& env) {
  for (const auto& var : env.vars()) {
    // Not a structured binding: clang (thread-safety build) rejects one
    // captured by the lambda below.
    const auto& name = var.first;
    bool known =
        std::any_of(std::begin(kVariables), std::end(kVariables),
                    [&](const VariableInfo& v) { return name == v.name; });
    if (known) continue;
    const char* nearest = NearestVariable(name);
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": unknown variable",
        nearest != nullptr ? absl::StrCat(" (did you mean ", nearest, "?)")
                           : " (diskwire --help lists the variables)"));
  }
  return absl::OkStatus();
}

absl::Status ParseVolumes(const EnvLookup& env, Config* c) {
  std::optional<std::string> both = env.Get("DISKWIRE_VOLUME");
  std::optional<std::string> send = env.Get("DISKWIRE_SEND_VOLUME");
  std::optional<std::string> recv = env.Get("DISKWIRE_RECV_VOLUME");
  if (both && (send || recv)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DISKWIRE_VOLUME: set together with DISKWIRE_", send ? "SEND" : "RECV",
        "_VOLUME; use VOLUME for one shared volume, or SEND_VOLUME and "
        "RECV_VOLUME for two"));
  }
  if (send.has_value() != recv.has_value()) {
    return absl::InvalidArgumentError(
        send ? "DISKWIRE_RECV_VOLUME: not set, but DISKWIRE_SEND_VOLUME is "
               "(set both, or DISKWIRE_VOLUME alone)"
             : "DISKWIRE_SEND_VOLUME: not set, but DISKWIRE_RECV_VOLUME is "
               "(set both, or DISKWIRE_VOLUME alone)");
  }
  if (!both && !send) {
    std::vector<std::string> names;
    for (const auto& [name, value] : env.vars()) names.push_back(name);
    if (names.empty()) {  // `diskwire run` with no settings at all
      return absl::InvalidArgumentError(
          "DISKWIRE_VOLUME: not set (diskwire needs a volume, and a "
          "selection of the connections it carries)");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "DISKWIRE_VOLUME: not set, but ", absl::StrJoin(names, ", "),
        names.size() == 1 ? " is" : " are",
        " (diskwire needs a volume; unset every DISKWIRE_* variable to run "
        "without it)"));
  }
  if (both) {
    DW_ASSIGN_OR_RETURN(c->send_volume,
                        ParseVolumePath("DISKWIRE_VOLUME", *both));
    c->recv_volume = c->send_volume;
    return absl::OkStatus();
  }
  DW_ASSIGN_OR_RETURN(c->send_volume,
                      ParseVolumePath("DISKWIRE_SEND_VOLUME", *send));
  DW_ASSIGN_OR_RETURN(c->recv_volume,
                      ParseVolumePath("DISKWIRE_RECV_VOLUME", *recv));
  return absl::OkStatus();
}

absl::Status ParseSelect(const EnvLookup& env, Config* c) {
  std::optional<std::string> text = env.Get("DISKWIRE_SELECT");
  if (!text) {
    return absl::InvalidArgumentError(
        "DISKWIRE_SELECT: not set (say which connections to carry, e.g. "
        "7000 or 10.0.0.0/8:*; * selects every TCP connection)");
  }
  absl::StatusOr<Selector> s = Selector::Parse(*text);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DISKWIRE_SELECT: ", s.status().message()));
  }
  c->select = *std::move(s);
  return absl::OkStatus();
}

// Reads an optional millisecond variable into `*out` (left alone if unset).
absl::Status Ms(const EnvLookup& env, const char* name, int64_t lo, int64_t hi,
                int64_t* out) {
  std::optional<std::string> v = env.Get(name);
  if (!v) return absl::OkStatus();
  DW_ASSIGN_OR_RETURN(*out, ParseMilliseconds(name, *v, lo, hi));
  return absl::OkStatus();
}

absl::Status ParseTimes(const EnvLookup& env, Config* c) {
  DW_RETURN_IF_ERROR(Ms(env, "DISKWIRE_DETECT_MS", 50, 600000, &c->detect_ms));
  DW_RETURN_IF_ERROR(
      Ms(env, "DISKWIRE_HEARTBEAT_MS", 10, 60000, &c->heartbeat_ms));
  DW_RETURN_IF_ERROR(
      Ms(env, "DISKWIRE_PEER_TIMEOUT_MS", 20, 3600000, &c->peer_timeout_ms));
  DW_RETURN_IF_ERROR(Ms(env, "DISKWIRE_POLL_MS", 1, 10000, &c->poll_ms));
  DW_RETURN_IF_ERROR(
      Ms(env, "DISKWIRE_MAX_LAG_MS", 1, 3600000, &c->max_lag_ms));
  if (c->peer_timeout_ms < 2 * c->heartbeat_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DISKWIRE_PEER_TIMEOUT_MS: ", c->peer_timeout_ms,
        " is less than twice DISKWIRE_HEARTBEAT_MS (", c->heartbeat_ms,
        "): one late heartbeat would declare a live peer dead"));
  }
  if (c->max_lag_ms < c->poll_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("DISKWIRE_MAX_LAG_MS: ", c->max_lag_ms,
                     " is less than DISKWIRE_POLL_MS (", c->poll_ms,
                     "): the bound could not be met"));
  }
  return absl::OkStatus();
}

absl::Status ParseRest(const EnvLookup& env, Config* c) {
  if (auto v = env.Get("DISKWIRE_MODE")) {
    DW_ASSIGN_OR_RETURN(c->mode, ParseMode("DISKWIRE_MODE", *v));
  }
  if (auto v = env.Get("DISKWIRE_REPLAY_CAP")) {
    DW_ASSIGN_OR_RETURN(c->replay_cap,
                        ParseSize("DISKWIRE_REPLAY_CAP", *v, uint64_t{64} << 10,
                                  uint64_t{1} << 30));
  }
  if (auto v = env.Get("DISKWIRE_RESUME")) {
    DW_ASSIGN_OR_RETURN(c->resume, ParseOnOff("DISKWIRE_RESUME", *v));
  }
  if (auto v = env.Get("DISKWIRE_RESUME_PORT")) {
    DW_RETURN_IF_ERROR(ParsePortRange("DISKWIRE_RESUME_PORT", *v,
                                      &c->resume_port_lo, &c->resume_port_hi));
  }
  if (auto v = env.Get("DISKWIRE_DURABILITY")) {
    DW_RETURN_IF_ERROR(ParseDurability("DISKWIRE_DURABILITY", *v,
                                       &c->durability, &c->fsync_interval_ms));
  }
  if (auto v = env.Get("DISKWIRE_KEY_FILE")) {
    c->key_file = *v;
    DW_ASSIGN_OR_RETURN(c->key, ReadKeyFile("DISKWIRE_KEY_FILE", *v));
    if (std::optional<std::string> w = KeyFileWarning("DISKWIRE_KEY_FILE", *v))
      c->warnings.push_back(*w);
  }
  if (auto v = env.Get("DISKWIRE_NODE")) {
    DW_ASSIGN_OR_RETURN(c->node, ParseNodeName("DISKWIRE_NODE", *v));
  } else {
    DW_ASSIGN_OR_RETURN(c->node, DefaultNodeName());
  }
  if (auto v = env.Get("DISKWIRE_LOG")) {
    DW_RETURN_IF_ERROR(
        ParseLog("DISKWIRE_LOG", *v, &c->log_sink, &c->log_path));
  }
  if (auto v = env.Get("DISKWIRE_LOG_LEVEL")) {
    DW_ASSIGN_OR_RETURN(c->log_level, ParseLogLevel("DISKWIRE_LOG_LEVEL", *v));
  }
  if (auto v = env.Get("DISKWIRE_ON_ERROR")) {
    DW_ASSIGN_OR_RETURN(c->passthrough_on_error,
                        ParseOnError("DISKWIRE_ON_ERROR", *v));
  }
  return absl::OkStatus();
}

}  // namespace

EnvLookup::EnvLookup(std::map<std::string, std::string> vars) {
  for (auto& [name, value] : vars) {
    if (absl::StartsWith(name, kPrefix)) vars_.emplace(name, std::move(value));
  }
}

EnvLookup EnvLookup::FromEnviron(const char* const* envp) {
  EnvLookup env;
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    absl::string_view entry(*envp);
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos || !absl::StartsWith(entry, kPrefix)) {
      continue;
    }
    env.vars_.emplace(std::string(entry.substr(0, eq)),
                      std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::optional<std::string> EnvLookup::Get(absl::string_view name) const {
  auto it = vars_.find(std::string(name));
  if (it == vars_.end()) return std::nullopt;
  return it->second;
}

bool Config::Present(const EnvLookup& env) { return !env.vars().empty(); }

absl::StatusOr<Config> Config::FromEnvironment(const EnvLookup& env) {
  Config c;
  DW_RETURN_IF_ERROR(CheckKnownNames(env));
  DW_RETURN_IF_ERROR(ParseVolumes(env, &c));
  DW_RETURN_IF_ERROR(ParseSelect(env, &c));
  DW_RETURN_IF_ERROR(ParseTimes(env, &c));
  DW_RETURN_IF_ERROR(ParseRest(env, &c));
  return c;
}

bool Config::PassthroughOnError(const EnvLookup& env) {
  std::optional<std::string> v = env.Get("DISKWIRE_ON_ERROR");
  if (!v) return false;
  absl::StatusOr<bool> p = ParseOnError("DISKWIRE_ON_ERROR", *v);
  return p.ok() && *p;
}

std::string Config::Summary() const {
  std::string volumes = send_volume == recv_volume
                            ? absl::StrCat("volume=", send_volume)
                            : absl::StrCat("send_volume=", send_volume,
                                           " recv_volume=", recv_volume);
  return absl::StrCat(
      volumes, " select=", select.ToString(), " mode=", ModeName(mode),
      " node=", node, " detect_ms=", detect_ms,
      " peer_timeout_ms=", peer_timeout_ms, " max_lag_ms=", max_lag_ms,
      " heartbeat_ms=", heartbeat_ms, " poll_ms=", poll_ms,
      " replay_cap=", replay_cap, " resume=", resume ? "on" : "off",
      " resume_port=", resume_port_lo, "-", resume_port_hi,
      " durability=", DurabilityName(durability, fsync_interval_ms),
      " key_file=", key_file.empty() ? "(none)" : key_file,
      " log=", log_sink == LogSink::kFile ? log_path : LogSinkName(log_sink),
      " log_level=", LogLevelName(log_level),
      " on_error=", passthrough_on_error ? "passthrough" : "fail");
}

absl::Span<const VariableInfo> Variables() { return kVariables; }

const char* NearestVariable(absl::string_view unknown) {
  // A name cut short or run on (DISKWIRE_DETECT, DISKWIRE_VOLUMES) first.
  for (const VariableInfo& v : kVariables) {
    absl::string_view known = v.name;
    bool prefix =
        absl::StartsWith(known, unknown) || absl::StartsWith(unknown, known);
    size_t diff = known.size() > unknown.size() ? known.size() - unknown.size()
                                                : unknown.size() - known.size();
    if (prefix && diff <= 3 && unknown.size() > kPrefix.size()) return v.name;
  }
  const char* best = nullptr;
  size_t best_distance = 4;  // More than 3 edits is not a typo.
  for (const VariableInfo& v : kVariables) {
    size_t d = EditDistance(unknown, v.name);
    if (d < best_distance) {
      best = v.name;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace diskwire
