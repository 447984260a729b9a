// File: cli/enable_command.h
// `diskwire enable UNIT [FLAGS]` and `diskwire disable UNIT`: put a systemd
// service under diskwire with a drop-in (UNIT.d/diskwire.conf), never by
// editing the vendor's unit file, the way mptcpize does. The drop-in holds
// the Environment= lines `diskwire run` would set, checked with the shim's
// own parser, and appends libdiskwire.so to an LD_PRELOAD the unit already
// sets instead of replacing it.
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_ENABLE_COMMAND_H_
#define DISKWIRE_CLI_ENABLE_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace diskwire {

// What `diskwire enable` or `disable` will do.
struct UnitPlan {
  std::string unit;     // with its suffix: "corosync.service"
  std::string root;     // "/" or --root
  std::string dropin;   // <root>/etc/systemd/system/UNIT.d/diskwire.conf
  std::string content;  // enable: the drop-in's text
  std::vector<std::string> warnings;
  bool help = false;
};

// Parses `args` (after "enable"; flags before or after UNIT) and builds the
// drop-in. `cwd` and `self_exe` as for `diskwire run`. Errors, one
// line each: InvalidArgument for usage and settings (the same text as the
// shim's), FailedPrecondition when the shim is not found.
absl::StatusOr<UnitPlan> PlanEnable(absl::Span<const std::string> args,
                                    const std::string& cwd,
                                    const std::string& self_exe);
absl::StatusOr<UnitPlan> PlanDisable(absl::Span<const std::string> args);

// Writes (enable) or removes (disable) the drop-in. Disable refuses a
// diskwire.conf that enable did not write.
absl::Status WriteDropIn(const UnitPlan& plan);
absl::Status RemoveDropIn(const UnitPlan& plan);

// The subcommands; return the exit status.
int EnableCommand(absl::Span<const std::string> args);
int DisableCommand(absl::Span<const std::string> args);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_ENABLE_COMMAND_H_
