// File: cli/format_command.h
// `diskwire format [--slots N] [--extent-bytes B] [--heartbeat-bytes B]
// [--outbox-cells N] [--keyed] [--force] DEVICE`: lays a diskwire volume on a
// block device (a shared LUN) or an image file, refusing one that holds a
// filesystem, a partition table or another signature unless --force, and
// prints the layout. Exit status: 0, 1 when the device cannot be formatted,
// 2 for a usage error.

#ifndef DISKWIRE_CLI_FORMAT_COMMAND_H_
#define DISKWIRE_CLI_FORMAT_COMMAND_H_

#include <string>

#include "absl/types/span.h"

namespace diskwire {

int FormatCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_FORMAT_COMMAND_H_
