#include "cli/settings.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/exec_paths.h"

namespace diskwire {
namespace {

constexpr absl::string_view kVarPrefix = "DISKWIRE_";

// The value of a flag as it goes into the environment: relative paths made
// absolute, since the program may change directory.
std::string EnvValue(const VariableInfo& v, const std::string& value,
                     const std::string& cwd) {
  absl::string_view syntax = v.syntax;
  if (syntax == "PATH") return Absolute(value, cwd);
  if (absl::StrContains(syntax, "/PATH") &&
      value.find('/') != std::string::npos) {
    return Absolute(value, cwd);
  }
  return value;
}

// "DISKWIRE_X: msg" → "DISKWIRE_X (--x): msg", so the user sees the flag.
absl::Status WithFlagName(const absl::Status& s) {
  absl::string_view msg = s.message();
  size_t colon = msg.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(msg);
  }
  absl::string_view var = msg.substr(0, colon);
  for (const VariableInfo& v : Variables()) {
    if (var == v.name) {
      return absl::InvalidArgumentError(
          absl::StrCat(var, " (--", FlagNameFor(var), ")", msg.substr(colon)));
    }
  }
  return absl::InvalidArgumentError(msg);
}

}  // namespace

// DISKWIRE_PEER_TIMEOUT_MS → peer-timeout-ms.
std::string FlagNameFor(absl::string_view var) {
  std::string flag = absl::AsciiStrToLower(var.substr(kVarPrefix.size()));
  for (char& c : flag) {
    if (c == '_') c = '-';
  }
  return flag;
}

std::vector<FlagSpec> VariableFlagSpecs() {
  // The names must outlive the specs: kept for the life of the process.
  static const std::vector<std::string>* names = [] {
    auto* n = new std::vector<std::string>();
    for (const VariableInfo& v : Variables()) n->push_back(FlagNameFor(v.name));
    return n;
  }();
  std::vector<FlagSpec> specs;
  for (const std::string& n : *names) specs.push_back({n.c_str(), true});
  return specs;
}

absl::Status ApplySettingFlags(const ParsedFlags& flags, const std::string& cwd,
                               std::vector<std::string>* env) {
  for (const VariableInfo& v : Variables()) {
    if (std::optional<std::string> value = flags.Get(FlagNameFor(v.name))) {
      SetEnv(env, v.name, EnvValue(v, *value, cwd));
    }
  }
  if (flags.Has("quiet")) {
    if (flags.Has("log")) {
      return absl::InvalidArgumentError("--quiet and --log contradict");
    }
    SetEnv(env, "DISKWIRE_LOG", "off");  // not a line, anywhere
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> CheckSettings(const std::vector<std::string>& env) {
  std::vector<const char*> envp;
  for (const std::string& e : env) envp.push_back(e.c_str());
  envp.push_back(nullptr);
  absl::StatusOr<Config> config =
      Config::FromEnvironment(EnvLookup::FromEnviron(envp.data()));
  if (!config.ok()) return WithFlagName(config.status());
  return config;
}

// Sets NAME=value in `env`, replacing an earlier value.
void SetEnv(std::vector<std::string>* env, absl::string_view name,
            const std::string& value) {
  std::string prefix = absl::StrCat(name, "=");
  for (std::string& entry : *env) {
    if (absl::StartsWith(entry, prefix)) {
      entry = prefix + value;
      return;
    }
  }
  env->push_back(prefix + value);
}

std::optional<std::string> GetEnv(const std::vector<std::string>& env,
                                  absl::string_view name) {
  std::string prefix = absl::StrCat(name, "=");
  for (const std::string& entry : env) {
    if (absl::StartsWith(entry, prefix)) return entry.substr(prefix.size());
  }
  return std::nullopt;
}

// Appends `shim` to an LD_PRELOAD list unless it is already there.
std::string AppendPreload(const std::optional<std::string>& existing,
                          const std::string& shim) {
  if (!existing || existing->empty()) return shim;
  for (absl::string_view item :
       absl::StrSplit(*existing, absl::ByAnyChar(": "), absl::SkipEmpty())) {
    if (item == shim) return *existing;
  }
  return absl::StrCat(*existing, ":", shim);
}

}  // namespace diskwire
