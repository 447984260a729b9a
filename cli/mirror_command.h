// File: cli/mirror_command.h
// `diskwire mirror --from SEND --to RECV [--once | --on-request] ...`: copies
// a send volume to a receive volume (storage/mirror.h, docs/REPLICATION.md):
// continuously by default, once with --once, or once per copy request with
// --on-request; `diskwire mirror --request --from SEND` makes such a request
// and prints the answer (storage/mirror_requests.h). SIGINT/SIGTERM stop it
// cleanly (a kill at any other instant is also safe: a restart resumes).
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_MIRROR_COMMAND_H_
#define DISKWIRE_CLI_MIRROR_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/mirror.h"

namespace diskwire {

enum class MirrorMode { kContinuous, kOnce, kOnRequest, kRequest };

struct MirrorPlan {
  std::string from, to;  // no --to with --request
  MirrorMode mode = MirrorMode::kContinuous;
  // --request: the request's name (default: time and pid) and how long to
  // wait for the answer.
  std::string request_id;
  absl::Duration request_timeout = absl::Seconds(60);
  storage::MirrorOptions options;
  absl::Duration poll = absl::Milliseconds(5);  // --poll-ms
  bool help = false;
};

// Parses `args` (what follows "mirror"). InvalidArgument with one line naming
// the flag for usage mistakes (a missing --from, --once with --on-request, a
// bad --durability or number, an unreadable --key-file).
absl::StatusOr<MirrorPlan> ParseMirrorArgs(absl::Span<const std::string> args);

std::string MirrorHelp();

// The `mirror` subcommand. Exit status: 0 done (or stopped by a signal), 1 a
// channel stopped by corruption (--once) or a fatal volume error, 2 usage.
int MirrorCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_MIRROR_COMMAND_H_
