// File: core/config.h
// diskwire's configuration: every DISKWIRE_* environment variable, parsed and
// checked in one place. The grammar, defaults and limits are in
// docs/CONFIG.md; the table returned by Variables() drives the parser, the
// typo check and `diskwire --help`, so a new variable is added there first.
//
//   EnvLookup env = EnvLookup::FromEnviron(environ);
//   if (!Config::Present(env)) return;  // diskwire is absent.
//   absl::StatusOr<Config> config = Config::FromEnvironment(env);
//   // !config.ok(): one line naming the variable and the bad token.
//
// Thread safety: EnvLookup and Config are immutable values; their const
// methods may be called from any thread.

#ifndef DISKWIRE_CORE_CONFIG_H_
#define DISKWIRE_CORE_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/selector.h"

namespace diskwire {

// The DISKWIRE_* part of an environment, injectable so that tests never touch
// the real one.
class EnvLookup {
 public:
  // Exactly `vars` (names to values); entries not starting with DISKWIRE_
  // are dropped.
  explicit EnvLookup(std::map<std::string, std::string> vars = {});
  // A snapshot of an environ-style array of "NAME=value" strings ending in
  // nullptr (as `environ`); the first of duplicate names wins, as getenv().
  static EnvLookup FromEnviron(const char* const* envp);

  std::optional<std::string> Get(absl::string_view name) const;
  // Every DISKWIRE_* variable, sorted by name.
  const std::map<std::string, std::string>& vars() const { return vars_; }

 private:
  std::map<std::string, std::string> vars_;
};

// One known variable, for help texts and the typo check.
struct VariableInfo {
  const char* name;          // "DISKWIRE_DETECT_MS"
  const char* syntax;        // "MS"
  const char* default_text;  // "2000"
  const char* help;          // One sentence.
};

enum class Mode { kFailover, kStorage };
enum class Durability { kNone, kInterval, kBatch };
// kDefault: warnings and errors to stderr, events to the system log, so that
// an application's own output stays its own.
enum class LogSink { kDefault, kStderr, kSyslog, kFile, kOff };
enum class LogLevel { kError, kWarn, kInfo, kDebug };

struct Config {
  std::string send_volume;  // Where this process appends records.
  std::string recv_volume;  // Where it reads the peers' records.
  Selector select;
  Mode mode = Mode::kFailover;
  int64_t detect_ms = 2000;
  int64_t peer_timeout_ms = 10000;
  int64_t max_lag_ms = 1000;
  int64_t heartbeat_ms = 1000;
  int64_t poll_ms = 5;
  uint64_t replay_cap = uint64_t{4} << 20;  // Bytes per session.
  // Resume on a fresh TCP connection when the network heals, listening on a
  // port in [resume_port_lo, resume_port_hi] (0, 0: the kernel picks).
  bool resume = true;
  uint16_t resume_port_lo = 0;
  uint16_t resume_port_hi = 0;
  Durability durability = Durability::kNone;
  int64_t fsync_interval_ms = 100;  // Used when durability is kInterval.
  std::string key_file;             // Empty: records are checksummed only.
  std::string key;                  // The 32-byte key from key_file.
  std::string node;                 // Validated [A-Za-z0-9._-]{1,64}.
  LogSink log_sink = LogSink::kDefault;
  std::string log_path;  // For LogSink::kFile: an absolute path.
  LogLevel log_level = LogLevel::kInfo;
  // DISKWIRE_ON_ERROR=passthrough: a process whose configuration is invalid
  // runs without diskwire (after the error line) instead of failing.
  bool passthrough_on_error = false;
  // Settings that work but deserve a word (a key file others can read):
  // logged once by the engine, printed by `diskwire run`.
  std::vector<std::string> warnings;

  // Is any DISKWIRE_* variable set? None means diskwire is absent.
  static bool Present(const EnvLookup& env);

  // Parses and checks every variable. Reads DISKWIRE_KEY_FILE and stats the
  // volumes and log directory; calls gethostname() when DISKWIRE_NODE is
  // unset. Errors are InvalidArgument (a malformed or unknown variable, a
  // missing volume or selection, contradicting settings) or the errno status
  // of a failed file check, with a one-line message that starts with the
  // variable's name, e.g.
  //   DISKWIRE_SELECT: bad port "70x0" in "10.0.0.0/8:70x0" (...)
  //   DISKWIRE_VOLUM: unknown variable (did you mean DISKWIRE_VOLUME?)
  static absl::StatusOr<Config> FromEnvironment(const EnvLookup& env);

  // Just DISKWIRE_ON_ERROR, readable when the rest of the configuration is
  // not: true for "passthrough", false for "fail", unset or anything else.
  static bool PassthroughOnError(const EnvLookup& env);

  // One line describing the effective settings (no key bytes), for the log.
  std::string Summary() const;
};

// Every variable Config::FromEnvironment understands, in documentation order.
absl::Span<const VariableInfo> Variables();

// The known variable nearest to `unknown` by edit distance, if it is close
// enough to be a typo (at most 3 edits); nullptr otherwise.
const char* NearestVariable(absl::string_view unknown);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_CONFIG_H_
