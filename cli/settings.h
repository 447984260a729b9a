// File: cli/settings.h
// The DISKWIRE_* settings as command-line flags, shared by `diskwire run` and
// `diskwire enable`: one flag per variable of core/config.h
// (DISKWIRE_PEER_TIMEOUT_MS is --peer-timeout-ms), turned into environment
// entries and checked with the shim's own parser, so that a mistake gets the
// same one line wherever it is made.
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_SETTINGS_H_
#define DISKWIRE_CLI_SETTINGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cli/flags.h"
#include "core/config.h"

namespace diskwire {

// DISKWIRE_PEER_TIMEOUT_MS → peer-timeout-ms.
std::string FlagNameFor(absl::string_view var);
// A FlagSpec (taking a value) per variable, in the order of Variables().
std::vector<FlagSpec> VariableFlagSpecs();

// Sets, in `env` ("NAME=value" entries), every variable whose flag was given
// (relative paths made absolute against `cwd`); --quiet, when a flag of the
// caller's, sets DISKWIRE_LOG=off (InvalidArgument together with --log).
absl::Status ApplySettingFlags(const ParsedFlags& flags, const std::string& cwd,
                               std::vector<std::string>* env);
// Parses `env` as the shim would. The error names the flag too:
// "DISKWIRE_SELECT (--select): bad port ...".
absl::StatusOr<Config> CheckSettings(const std::vector<std::string>& env);

// "NAME=value" entries.
void SetEnv(std::vector<std::string>* env, absl::string_view name,
            const std::string& value);
std::optional<std::string> GetEnv(const std::vector<std::string>& env,
                                  absl::string_view name);
// Appends `shim` to an LD_PRELOAD list unless it is already there.
std::string AppendPreload(const std::optional<std::string>& existing,
                          const std::string& shim);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_SETTINGS_H_
