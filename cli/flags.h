// File: cli/flags.h
// The command line parser shared by the `diskwire` subcommands: long flags
// only (`--name VALUE`, `--name=VALUE`, `--name` for switches), then the
// positional arguments.
//
//   const FlagSpec kFlags[] = {{"volume", true}, {"help", false}};
//   absl::StatusOr<ParsedFlags> f = ParseFlags(args, kFlags);
//   // !f.ok(): InvalidArgument with one line, e.g.
//   //   unknown flag --volum (did you mean --volume?)
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_FLAGS_H_
#define DISKWIRE_CLI_FLAGS_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace diskwire {

struct FlagSpec {
  const char* name;     // Without the leading "--".
  bool takes_value;     // false: a switch, whose value is "true".
  char short_name = 0;  // also given as "-x" (a switch only); 0: none
};

struct ParsedFlags {
  // The flags given, in command-line order.
  std::vector<std::pair<std::string, std::string>> flags;
  // Everything after the flags: after "--", or from the first argument that
  // does not start with "-".
  std::vector<std::string> positional;

  bool Has(const std::string& name) const;
  std::optional<std::string> Get(const std::string& name) const;
};

// Parses `args` (without the program and subcommand names). A flag given
// twice, an unknown flag, a value missing or given to a switch, and a "-x"
// short option that no switch has are InvalidArgument errors naming the flag.
absl::StatusOr<ParsedFlags> ParseFlags(absl::Span<const std::string> args,
                                       absl::Span<const FlagSpec> specs);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_FLAGS_H_
