#include "cli/mirror_command.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "cli/flags.h"
#include "storage/dir_volume.h"
#include "storage/mirror_requests.h"

namespace diskwire {
namespace {

const FlagSpec kFlags[] = {
    {"from", true},       {"to", true},
    {"once", false},      {"on-request", false},
    {"request", false},   {"request-id", true},
    {"timeout-ms", true}, {"name", true},
    {"durability", true}, {"sync-interval-ms", true},
    {"max-lag-ms", true}, {"key-file", true},
    {"segment-mb", true}, {"poll-ms", true},
    {"help", false},
};

std::atomic<storage::Mirror*> g_running{nullptr};

void OnSignal(int) {
  if (storage::Mirror* m = g_running.load()) m->Stop();
}

absl::StatusOr<int64_t> Number(const ParsedFlags& flags, const char* flag,
                               int64_t fallback, int64_t min, int64_t max) {
  std::optional<std::string> v = flags.Get(flag);
  if (!v) return fallback;
  int64_t n = 0;
  if (!absl::SimpleAtoi(*v, &n) || n < min || n > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, ": \"", *v, "\" is not a number from ", min, " to ", max));
  }
  return n;
}

void Print(const std::string& line) {
  std::fprintf(stderr, "diskwire mirror: %s\n", line.c_str());
}

}  // namespace

std::string MirrorHelp() {
  return "usage: diskwire mirror --from SEND --to RECV [--once | "
         "--on-request]\n"
         "       diskwire mirror --request --from SEND [--name NAME] "
         "[--request-id ID]\n"
         "                       [--timeout-ms N] [--key-file F]\n"
         "                       [--name NAME] [--durability "
         "none|interval|batch]\n"
         "                       [--sync-interval-ms N] [--max-lag-ms N]\n"
         "                       [--key-file F] [--segment-mb N] [--poll-ms "
         "N]\n"
         "\n"
         "Copies the send volume SEND to the receive volume RECV, each a\n"
         "directory volume or a LUN: channels record by record (verified; a\n"
         "reader of RECV never sees a partial batch), heartbeats (replaced\n"
         "atomically) and inbox messages (moved exactly once; at least once\n"
         "when a LUN is involved). Source trims and removed channels reach\n"
         "RECV too. Killed at any instant, a restart resumes without loss or\n"
         "duplication. On a LUN, RECV keeps what the mirror copied while it\n"
         "runs and for 30 s after (run it continuously for a LUN).\n"
         "\n"
         "  (default)        copy continuously until SIGINT/SIGTERM\n"
         "  --once           copy what SEND holds now, then exit\n"
         "  --on-request     copy once per copy request made on SEND: a file\n"
         "                   SEND/mirror/requests/ID (ID: [a-z0-9._-]),\n"
         "                   answered by SEND/mirror/done/ID; on a LUN, an\n"
         "                   inbox message (see --request)\n"
         "  --request        ask the --on-request mirror NAME copying from\n"
         "                   SEND for a copy, wait for its answer (up to\n"
         "                   --timeout-ms, default 60000), print it; exit 1\n"
         "                   if it names a stopped channel or none came\n"
         "  --name NAME      status file RECV/mirror/NAME.status (channel\n"
         "                   mirror.NAME.status on a LUN; default\n"
         "                   \"default\"), rewritten every second: records,\n"
         "                   bytes, lag p50/p99/max per channel and overall\n"
         "  --durability     none (default), interval (fdatasync every\n"
         "                   --sync-interval-ms, default 100), batch "
         "(fdatasync\n"
         "                   before each append returns)\n"
         "  --max-lag-ms N   warn when a record reaches RECV more than N ms\n"
         "                   after it was written (default "
         "DISKWIRE_MAX_LAG_MS,\n"
         "                   else off)\n"
         "  --key-file F     MAC key of both volumes (default "
         "DISKWIRE_KEY_FILE)\n"
         "  --segment-mb N   segment size on RECV (default 64, as the engine)\n"
         "  --poll-ms N      idle poll for heartbeats, inboxes and network\n"
         "                   filesystems (default 5)\n"
         "\n"
         "A corrupt record stops its channel with an error naming the file "
         "and\n"
         "offset; other channels go on. A full RECV is retried with backoff.\n"
         "Exit status: 0 done or stopped, 1 a channel stopped or a volume\n"
         "error, 2 usage.\n";
}

absl::StatusOr<MirrorPlan> ParseMirrorArgs(absl::Span<const std::string> args) {
  DW_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(args, kFlags));
  MirrorPlan plan;
  if (flags.Has("help")) {
    plan.help = true;
    return plan;
  }
  if (!flags.positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument ", flags.positional[0]));
  }
  if (flags.Has("request")) {
    if (!flags.Get("from") || flags.Get("to") || flags.Has("once") ||
        flags.Has("on-request")) {
      return absl::InvalidArgumentError(
          "--request takes --from SEND (the volume the mirror copies from), "
          "no --to, --once or --on-request");
    }
    plan.mode = MirrorMode::kRequest;
    plan.from = *flags.Get("from");
    plan.options.name = flags.Get("name").value_or("default");
    plan.request_id =
        flags.Get("request-id")
            .value_or(absl::StrCat("r", absl::ToUnixMillis(absl::Now()), "-",
                                   getpid()));
    DW_ASSIGN_OR_RETURN(int64_t timeout_ms,
                        Number(flags, "timeout-ms", 60'000, 1, 86'400'000));
    plan.request_timeout = absl::Milliseconds(timeout_ms);
  } else if (flags.Get("request-id") || flags.Get("timeout-ms")) {
    return absl::InvalidArgumentError(
        "--request-id and --timeout-ms go with --request");
  }
  if (plan.mode != MirrorMode::kRequest) {
    if (!flags.Get("from") || !flags.Get("to")) {
      return absl::InvalidArgumentError(
          "--from SEND and --to RECV are required");
    }
    plan.from = *flags.Get("from");
    plan.to = *flags.Get("to");
  }
  if (plan.from == plan.to) {
    return absl::InvalidArgumentError("--from and --to name the same volume");
  }
  if (flags.Has("once") && flags.Has("on-request")) {
    return absl::InvalidArgumentError(
        "--once and --on-request exclude each other");
  }
  if (flags.Has("once")) plan.mode = MirrorMode::kOnce;
  if (flags.Has("on-request")) plan.mode = MirrorMode::kOnRequest;
  if (plan.mode == MirrorMode::kRequest) {
    // Only the key matters to a requester.
    if (std::optional<std::string> name = flags.Get("name")) {
      plan.options.name = *name;
    }
  }
  storage::MirrorOptions& o = plan.options;
  if (std::optional<std::string> name = flags.Get("name")) o.name = *name;
  const std::string durability = flags.Get("durability").value_or("none");
  if (durability == "none") {
    o.durability = storage::Durability::kNone;
  } else if (durability == "interval") {
    o.durability = storage::Durability::kInterval;
  } else if (durability == "batch") {
    o.durability = storage::Durability::kEveryBatch;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--durability: \"", durability, "\" is not none, interval or batch"));
  }
  DW_ASSIGN_OR_RETURN(int64_t sync_ms,
                      Number(flags, "sync-interval-ms", 100, 1, 3'600'000));
  o.sync_interval = absl::Milliseconds(sync_ms);
  int64_t lag_default = 0;
  if (const char* env = std::getenv("DISKWIRE_MAX_LAG_MS");
      env != nullptr && *env != '\0' && !flags.Get("max-lag-ms")) {
    if (!absl::SimpleAtoi(env, &lag_default) || lag_default < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DISKWIRE_MAX_LAG_MS: \"", env, "\" is not a positive number"));
    }
  }
  DW_ASSIGN_OR_RETURN(int64_t lag_ms,
                      Number(flags, "max-lag-ms", lag_default, 1, 86'400'000));
  o.max_lag = absl::Milliseconds(lag_ms);
  DW_ASSIGN_OR_RETURN(int64_t segment_mb,
                      Number(flags, "segment-mb", 64, 1, 4096));
  o.segment_bytes = static_cast<uint64_t>(segment_mb) << 20;
  DW_ASSIGN_OR_RETURN(int64_t poll_ms, Number(flags, "poll-ms", 5, 1, 60'000));
  o.trim_check_interval = absl::Seconds(1);
  std::optional<std::string> key_file = flags.Get("key-file");
  if (!key_file) {
    if (const char* env = std::getenv("DISKWIRE_KEY_FILE"); env && *env) {
      key_file = env;
    }
  }
  if (key_file) {
    absl::StatusOr<std::string> key = storage::LoadMacKeyFile(*key_file);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--key-file: ", key.status().message()));
    }
    o.mac_key = *std::move(key);
  }
  o.warn = Print;
  plan.poll = absl::Milliseconds(poll_ms);
  return plan;
}

int MirrorCommand(absl::Span<const std::string> args) {
  absl::StatusOr<MirrorPlan> plan = ParseMirrorArgs(args);
  if (!plan.ok()) {
    Print(std::string(plan.status().message()));
    return 2;
  }
  if (plan->help) {
    std::fputs(MirrorHelp().c_str(), stdout);
    return 0;
  }
  if (plan->mode == MirrorMode::kRequest) {
    absl::StatusOr<std::string> answer = storage::RequestMirrorCopy(
        plan->from, plan->options.name, plan->request_id, plan->request_timeout,
        plan->options.mac_key);
    if (!answer.ok()) {
      Print(std::string(answer.status().message()));
      return 1;
    }
    std::fputs(answer->c_str(), stdout);
    // A channel the mirror had to stop is named on an "error" line.
    return absl::StrContains(*answer, "\nerror ") ||
                   absl::StartsWith(*answer, "error ")
               ? 1
               : 0;
  }
  // Three descriptors per channel stay open (target lock and segment, source
  // segment): take the hard limit.
  rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 &&
      files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  absl::StatusOr<std::unique_ptr<storage::Mirror>> mirror =
      storage::Mirror::Open(plan->from, plan->to, plan->options);
  if (!mirror.ok()) {
    Print(std::string(mirror.status().message()));
    return 1;
  }
  g_running.store(mirror->get());
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  absl::Status s;
  switch (plan->mode) {
    case MirrorMode::kContinuous:
      s = (*mirror)->Run(plan->poll);
      break;
    case MirrorMode::kOnRequest:
      s = (*mirror)->ServeRequests(plan->poll);
      break;
    case MirrorMode::kRequest:  // answered above
      break;
    case MirrorMode::kOnce: {
      absl::StatusOr<storage::PassResult> total = (*mirror)->CopyAll();
      s = total.status();
      if (total.ok()) {
        std::printf("copied %llu records, %llu bytes, %llu files\n",
                    static_cast<unsigned long long>(total->records),
                    static_cast<unsigned long long>(total->bytes),
                    static_cast<unsigned long long>(total->mailbox_files));
      }
      if (s.ok()) s = (*mirror)->WriteStatusFile();
      break;
    }
  }
  g_running.store(nullptr);
  if (!s.ok()) {
    Print(std::string(s.message()));
    return 1;
  }
  if (plan->mode == MirrorMode::kOnce && !(*mirror)->channel_errors().empty()) {
    return 1;
  }
  return 0;
}

}  // namespace diskwire
