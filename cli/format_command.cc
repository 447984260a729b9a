#include "cli/format_command.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.h"
#include "storage/lun_format.h"

namespace diskwire {
namespace {

const FlagSpec kFlags[] = {
    {"slots", true},        {"extent-bytes", true}, {"heartbeat-bytes", true},
    {"outbox-cells", true}, {"keyed", false},       {"force", false},
    {"help", false}};

constexpr char kHelp[] =
    "usage: diskwire format [OPTIONS] DEVICE\n"
    "\n"
    "Lays a diskwire volume on DEVICE: a block device both hosts see (a SAN\n"
    "LUN, with no filesystem on it) or an image file. Give the same DEVICE\n"
    "as DISKWIRE_VOLUME on both hosts; every access is O_DIRECT, so neither\n"
    "host reads its own stale cache of the other's writes.\n"
    "\n"
    "  --slots N            processes that can use the volume at once "
    "(default\n"
    "                       64, at most 255; each has its own region)\n"
    "  --extent-bytes B     unit of channel space (default: about 64 per\n"
    "                       slot, from 131072 to 1048576; a "
    "multiple\n"
    "                       of 4096, at least 131072)\n"
    "  --heartbeat-bytes B  room for one process's heartbeat (default 262144;\n"
    "                       it lists the process's sessions)\n"
    "  --outbox-cells N     messages a process can have in flight (default "
    "16)\n"
    "  --keyed              records carry a MAC: DISKWIRE_KEY_FILE required\n"
    "  --force              overwrite a filesystem, partition table or other\n"
    "                       signature found on DEVICE (it is destroyed)\n"
    "\n"
    "The layout is described byte by byte in docs/FORMAT.md.\n";

int Usage(const std::string& message) {
  std::fprintf(stderr, "diskwire format: %s (see diskwire format --help)\n",
               message.c_str());
  return 2;
}

}  // namespace

int FormatCommand(absl::Span<const std::string> args) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, kFlags);
  if (!flags.ok()) return Usage(std::string(flags.status().message()));
  if (flags->Has("help")) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (flags->positional.size() != 1) {
    return Usage(flags->positional.empty() ? "no DEVICE given"
                                           : "one DEVICE, please");
  }
  storage::LunFormatRequest request;
  const struct {
    const char* flag;
    uint32_t* value;
  } numbers[] = {{"slots", &request.slots},
                 {"extent-bytes", &request.extent_bytes},
                 {"heartbeat-bytes", &request.heartbeat_bytes},
                 {"outbox-cells", &request.outbox_cells}};
  for (const auto& n : numbers) {
    if (auto v = flags->Get(n.flag)) {
      if (!absl::SimpleAtoi(*v, n.value) || *n.value == 0) {
        return Usage(absl::StrCat("--", n.flag, ": \"", *v,
                                  "\" is not a positive number"));
      }
    }
  }
  request.keyed = flags->Has("keyed");
  const std::string& device = flags->positional[0];
  absl::StatusOr<storage::LunGeometry> g =
      storage::FormatLun(device, request, flags->Has("force"));
  if (!g.ok()) {
    std::fprintf(stderr, "diskwire format: %s\n",
                 std::string(g.status().message()).c_str());
    return 1;
  }
  const uint64_t data =
      uint64_t{g->slots} * g->extents_per_slot * g->extent_bytes;
  std::printf(
      "%s: diskwire volume, format %u%s\n"
      "  %u slots of %u extents of %u bytes (%llu MiB of channel space)\n"
      "  heartbeat %u bytes x 2, %u outbox cells per slot\n"
      "  slots at %llu, %llu bytes each; extents at %llu; %llu of %llu bytes "
      "used\n",
      device.c_str(), g->version, request.keyed ? ", keyed" : "", g->slots,
      g->extents_per_slot, g->extent_bytes,
      static_cast<unsigned long long>(data >> 20), g->heartbeat_bytes,
      g->outbox_cells, static_cast<unsigned long long>(g->slot_offset(0)),
      static_cast<unsigned long long>(g->slot_bytes()),
      static_cast<unsigned long long>(g->data_offset()),
      static_cast<unsigned long long>(g->used_bytes()),
      static_cast<unsigned long long>(g->device_bytes));
  return 0;
}

}  // namespace diskwire
