#include "cli/prune_command.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "core/volume_prune.h"
#include "storage/dir_volume.h"
#include "storage/lun_device.h"
#include "storage/volume_open.h"

namespace diskwire {
namespace {

const FlagSpec kFlags[] = {{"volume", true},
                           {"stale-after-ms", true},
                           {"key-file", true},
                           {"help", false}};

constexpr char kHelp[] =
    "usage: diskwire prune [--volume V] [--stale-after-ms N] [--key-file F]\n"
    "\n"
    "Removes what no live process needs from volume V (default: "
    "$DISKWIRE_VOLUME):\n"
    "heartbeats older than N ms (default 60000), the inboxes of those "
    "processes,\n"
    "and channels untouched for N ms that no live process lists. Prints each\n"
    "removal. Safe to run on several hosts at once.\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "diskwire prune: %s\n", message.c_str());
  return 1;
}

}  // namespace

int PruneCommand(absl::Span<const std::string> args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, kFlags);
  if (flags.ok() && flags->Has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  std::optional<std::string> volume;
  int64_t stale_after_ms = 60'000;
  std::string usage;
  if (!flags.ok()) {
    usage = std::string(flags.status().message());
  } else {
    volume = flags->Get("volume");
    if (!volume) {
      if (const char* e = getenv("DISKWIRE_VOLUME"); e != nullptr && *e)
        volume = e;
    }
    if (auto v = flags->Get("stale-after-ms");
        v &&
        (!absl::SimpleAtoi(*v, &stale_after_ms) || stale_after_ms < 1000)) {
      usage = absl::StrCat("--stale-after-ms: \"", *v,
                           "\" is not a number of milliseconds >= 1000");
    } else if (!flags->positional.empty()) {
      usage = absl::StrCat("unexpected argument ", flags->positional[0]);
    } else if (!volume || volume->empty()) {
      usage = "no volume: give --volume V or set DISKWIRE_VOLUME";
    }
  }
  if (!usage.empty()) {
    std::fprintf(stderr, "diskwire prune: %s (see diskwire prune --help)\n",
                 usage.c_str());
    return 2;
  }
  struct stat st;
  if (!storage::LooksLikeLun(*volume) &&
      stat((*volume + "/VOLUME").c_str(), &st) != 0)
    return Fail(absl::StrCat(*volume, ": not a diskwire volume"));
  storage::DirVolumeOptions options;
  if (auto key_file = flags->Get("key-file")) {
    auto key = storage::LoadMacKeyFile(*key_file);
    if (!key.ok()) return Fail(std::string(key.status().message()));
    options.mac_key = *key;
  }
  auto opened = storage::OpenVolume(*volume, options);
  if (!opened.ok()) return Fail(std::string(opened.status().message()));
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const uint64_t now_ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 +
                          static_cast<uint64_t>(now.tv_nsec);
  auto report = PruneVolume(*volume, **opened, now_ns, stale_after_ms);
  if (!report.ok()) return Fail(std::string(report.status().message()));
  for (const std::string& removed : report->removed)
    std::printf("removed %s\n", removed.c_str());
  for (const std::string& problem : report->problems)
    std::fprintf(stderr, "diskwire prune: kept %s\n", problem.c_str());
  std::printf("%zu removed, %zu kept with a problem\n", report->removed.size(),
              report->problems.size());
  return report->problems.empty() ? 0 : 1;
}

}  // namespace diskwire
