// File: cli/prune_command.h
// `diskwire prune [--volume V] [--stale-after-ms N] [--key-file F]`: removes
// from a volume what no live process needs — heartbeats of processes that
// stopped publishing more than N ms ago (default 60000), their inboxes, and
// channels that nobody wrote for that long and no live process lists — and
// prints one line per removal. Engines do the same every minute with a bound
// of at least 10 x DISKWIRE_PEER_TIMEOUT_MS; this is the on-demand form.
// Exit status: 0, or 1 when the volume cannot be read or something could not
// be removed, 2 for a usage error.

#ifndef DISKWIRE_CLI_PRUNE_COMMAND_H_
#define DISKWIRE_CLI_PRUNE_COMMAND_H_

#include <string>

#include "absl/types/span.h"

namespace diskwire {

int PruneCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_PRUNE_COMMAND_H_
