// File: cli/run_command.h
// `diskwire run [FLAGS] -- CMD [ARGS...]`: runs CMD with libdiskwire.so
// preloaded and the DISKWIRE_* environment set from the flags. Every
// variable of core/config.h has a flag: DISKWIRE_PEER_TIMEOUT_MS is
// --peer-timeout-ms. The environment is checked with the shim's own parser
// (Config::FromEnvironment) before the exec, so a mistake stops here with one
// line instead of inside the program.
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_RUN_COMMAND_H_
#define DISKWIRE_CLI_RUN_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace diskwire {

// What `diskwire run` starts from: the caller's environment ("NAME=value"),
// its working directory and its own executable (for finding the shim).
struct RunContext {
  std::vector<std::string> environ;
  std::string cwd;
  std::string self_exe;
};

// What `diskwire run` will exec.
struct RunPlan {
  std::string path;                   // The resolved executable.
  std::vector<std::string> argv;      // argv[0] as the user typed it.
  std::vector<std::string> env;       // "NAME=value", LD_PRELOAD included.
  std::vector<std::string> warnings;  // Why preloading may not take effect.
  bool help = false;                  // --help: print RunHelp(), exec nothing.
};

// Parses `args` (what follows "run") and prepares the exec. Errors, each one
// line: InvalidArgument for usage and configuration mistakes, e.g.
//   DISKWIRE_SELECT (--select): bad port "x" in "x" (...)
// FailedPrecondition when the shim is not found; NotFound or
// PermissionDenied when CMD cannot be run.
absl::StatusOr<RunPlan> PlanRun(absl::Span<const std::string> args,
                                const RunContext& context);

// The text of `diskwire run --help`.
std::string RunHelp();

// The process exit status for a failed PlanRun: 2 usage or configuration, 1
// no shim, 127 command not found, 126 not executable.
int ExitCodeFor(const absl::Status& status);

// The `run` subcommand: plans, prints warnings, execs. Returns only when it
// does not exec (help, an error), with the exit status.
int RunCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_RUN_COMMAND_H_
