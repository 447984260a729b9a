#include "cli/enable_command.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "cli/exec_paths.h"
#include "cli/flags.h"
#include "cli/settings.h"
#include "core/version.h"

namespace diskwire {
namespace {

namespace fs = std::filesystem;

constexpr char kHeader[] = "# Written by `diskwire enable`";
// Where systemd looks for units, most specific first (systemd.unit(5)).
constexpr const char* kUnitDirs[] = {"etc/systemd/system", "run/systemd/system",
                                     "lib/systemd/system",
                                     "usr/lib/systemd/system"};
constexpr const char* kUnitSuffixes[] = {
    ".service", ".socket", ".device", ".mount", ".automount", ".swap",
    ".target",  ".path",   ".timer",  ".slice", ".scope"};

std::vector<FlagSpec> Specs(bool enable) {
  std::vector<FlagSpec> specs =
      enable ? VariableFlagSpecs() : std::vector<FlagSpec>{};
  if (enable) specs.push_back({"shim", true});
  specs.push_back({"root", true});
  specs.push_back({"help", false});
  return specs;
}

// Flags may come before or after UNIT: the flags, and what is not one.
absl::StatusOr<ParsedFlags> SplitArgs(absl::Span<const std::string> args,
                                      const std::vector<FlagSpec>& specs) {
  std::vector<std::string> flags, positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      positional.push_back(arg);
      continue;
    }
    flags.push_back(arg);
    const absl::string_view name = absl::StripPrefix(
        absl::string_view(arg).substr(0, arg.find('=')), "--");
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const FlagSpec& s) { return name == s.name; });
    if (spec != specs.end() && spec->takes_value &&
        arg.find('=') == std::string::npos && i + 1 < args.size()) {
      flags.push_back(args[++i]);
    }
  }
  DW_ASSIGN_OR_RETURN(ParsedFlags parsed, ParseFlags(flags, specs));
  parsed.positional = std::move(positional);
  return parsed;
}

absl::StatusOr<std::string> UnitName(const ParsedFlags& flags,
                                     absl::string_view command) {
  if (flags.positional.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        flags.positional.empty() ? "missing the unit" : "one unit at a time",
        " (diskwire ", command, " UNIT [FLAGS])"));
  }
  std::string unit = flags.positional[0];
  const bool valid =
      !unit.empty() && unit.size() <= 255 &&
      std::all_of(unit.begin(), unit.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == ':' ||
               c == '_' || c == '.' || c == '\\' || c == '@' || c == '-';
      });
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", unit, "\" is not a unit name"));
  }
  const bool has_suffix =
      std::any_of(std::begin(kUnitSuffixes), std::end(kUnitSuffixes),
                  [&](const char* s) { return absl::EndsWith(unit, s); });
  if (!has_suffix) absl::StrAppend(&unit, ".service");  // as systemctl does
  return unit;
}

std::string RootOf(const ParsedFlags& flags, const std::string& cwd) {
  std::optional<std::string> root = flags.Get("root");
  return root ? Absolute(*root, cwd) : "/";
}

std::string Under(const std::string& root, absl::string_view path) {
  return root == "/" ? absl::StrCat("/", path) : absl::StrCat(root, "/", path);
}

std::string DropInPath(const std::string& root, const std::string& unit) {
  return Under(root,
               absl::StrCat("etc/systemd/system/", unit, ".d/diskwire.conf"));
}

// The assignments of one Environment= value: words, each maybe quoted.
std::vector<std::string> EnvironmentWords(absl::string_view value) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (quote != 0) {
      if (c == '\\' && i + 1 < value.size()) {
        word += value[++i];
      } else if (c == quote) {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

// The LD_PRELOAD that the unit's own file and its other drop-ins set, read as
// systemd would: the unit file, then drop-ins by name; the last one wins.
std::optional<std::string> ExistingPreload(const std::string& root,
                                           const std::string& unit,
                                           std::vector<std::string>* warnings) {
  std::vector<std::string> files;
  for (const char* dir : kUnitDirs) {
    const std::string path = Under(root, absl::StrCat(dir, "/", unit));
    if (fs::exists(path)) {
      files.push_back(path);
      break;
    }
  }
  if (files.empty()) {
    warnings->push_back(
        absl::StrCat("no unit file for ", unit, " under ", root,
                     ": an LD_PRELOAD it sets could not be kept"));
  }
  std::vector<std::string> dropins;
  for (const char* dir : kUnitDirs) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(
             Under(root, absl::StrCat(dir, "/", unit, ".d")), ec)) {
      const std::string name = e.path().filename();
      if (absl::EndsWith(name, ".conf") && name != "diskwire.conf")
        dropins.push_back(e.path());
    }
  }
  std::sort(dropins.begin(), dropins.end(),
            [](const std::string& a, const std::string& b) {
              return fs::path(a).filename() < fs::path(b).filename();
            });
  files.insert(files.end(), dropins.begin(), dropins.end());
  std::optional<std::string> preload;
  for (const std::string& file : files) {
    std::ifstream in(file);
    std::string line, section;
    while (std::getline(in, line)) {
      absl::string_view l = absl::StripAsciiWhitespace(line);
      if (absl::StartsWith(l, "[")) {
        section = std::string(l);
      } else if (section == "[Service]" &&
                 absl::ConsumePrefix(&l, "Environment=")) {
        if (l.empty()) preload.reset();  // an empty assignment resets
        for (const std::string& w : EnvironmentWords(l)) {
          if (absl::StartsWith(w, "LD_PRELOAD=")) preload = w.substr(11);
        }
      } else if (section == "[Service]" &&
                 absl::StartsWith(l, "EnvironmentFile=")) {
        warnings->push_back(
            absl::StrCat(file, " reads ", l.substr(16),
                         ": an LD_PRELOAD set there is replaced, not kept"));
      }
    }
  }
  return preload;
}

// A value as an Environment= word: quoted, with systemd's specifiers (%)
// and the quote's own escapes doubled.
std::string Quoted(absl::string_view assignment) {
  std::string out = "\"";
  for (char c : assignment) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '%') out += '%';
    out += c;
  }
  return out + "\"";
}

absl::Status ReloadSystemd(const UnitPlan& plan, bool* reloaded) {
  *reloaded = false;
  if (plan.root != "/" || !fs::exists("/run/systemd/system")) {
    return absl::OkStatus();
  }
  const pid_t pid = fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    execlp("systemctl", "systemctl", "daemon-reload",
           static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::UnavailableError("systemctl daemon-reload failed");
  }
  *reloaded = true;
  return absl::OkStatus();
}

std::string Help(bool enable) {
  if (!enable) {
    return "usage: diskwire disable UNIT [--root DIR]\n"
           "\n"
           "Removes the drop-in that `diskwire enable` wrote\n"
           "(/etc/systemd/system/UNIT.d/diskwire.conf) and reloads systemd "
           "when "
           "it runs.\n"
           "A diskwire.conf that enable did not write is left alone (exit "
           "1).\n";
  }
  return "usage: diskwire enable UNIT [--root DIR] [--shim PATH] [FLAGS]\n"
         "\n"
         "Puts a systemd service under diskwire with a drop-in,\n"
         "/etc/systemd/system/UNIT.d/diskwire.conf (under DIR with --root),\n"
         "holding the Environment= lines `diskwire run` would set: the same\n"
         "flags (see diskwire run --help), checked with the same parser.\n"
         "libdiskwire.so is appended to an LD_PRELOAD the unit already sets.\n"
         "Enabling again updates the drop-in. systemd is reloaded when it "
         "runs\n"
         "(not with --root); restart the unit to apply it.\n"
         "Flags may come before or after UNIT; a name without a suffix is a\n"
         ".service.\n";
}

// Reloads systemd after a change to `plan`'s drop-in and says what is left
// to do; the exit status.
int Reload(const UnitPlan& plan, const char* command) {
  bool reloaded = false;
  absl::Status reload = ReloadSystemd(plan, &reloaded);
  if (!reload.ok()) {
    std::fprintf(stderr, "diskwire %s: %s\n", command,
                 std::string(reload.message()).c_str());
    return 1;
  }
  std::printf("%s; restart it to apply: systemctl restart %s\n",
              reloaded ? "systemd reloaded"
              : plan.root != "/"
                  ? "systemd not reloaded (--root)"
                  : "systemd is not running here: nothing to reload",
              plan.unit.c_str());
  return 0;
}

}  // namespace

absl::StatusOr<UnitPlan> PlanEnable(absl::Span<const std::string> args,
                                    const std::string& cwd,
                                    const std::string& self_exe) {
  UnitPlan plan;
  DW_ASSIGN_OR_RETURN(ParsedFlags flags, SplitArgs(args, Specs(true)));
  if (flags.Has("help")) {
    plan.help = true;
    return plan;
  }
  DW_ASSIGN_OR_RETURN(plan.unit, UnitName(flags, "enable"));
  plan.root = RootOf(flags, cwd);
  plan.dropin = DropInPath(plan.root, plan.unit);
  // Only the flags count: the caller's own DISKWIRE_* environment is not the
  // service's.
  std::vector<std::string> settings;
  DW_RETURN_IF_ERROR(ApplySettingFlags(flags, cwd, &settings));
  DW_ASSIGN_OR_RETURN(Config config, CheckSettings(settings));
  plan.warnings = config.warnings;
  DW_ASSIGN_OR_RETURN(std::string shim,
                      FindShim(self_exe, flags.Get("shim"), cwd));
  shim = fs::path(shim).lexically_normal().string();  // the service's path
  const std::optional<std::string> existing =
      ExistingPreload(plan.root, plan.unit, &plan.warnings);
  plan.content =
      absl::StrCat(kHeader, " (diskwire ", kVersion, "): `diskwire disable ",
                   plan.unit, "` removes it.\n[Service]\n");
  for (const std::string& s : settings)
    absl::StrAppend(&plan.content, "Environment=", Quoted(s), "\n");
  absl::StrAppend(
      &plan.content, "Environment=",
      Quoted(absl::StrCat("LD_PRELOAD=", AppendPreload(existing, shim))), "\n");
  return plan;
}

absl::StatusOr<UnitPlan> PlanDisable(absl::Span<const std::string> args) {
  UnitPlan plan;
  DW_ASSIGN_OR_RETURN(ParsedFlags flags, SplitArgs(args, Specs(false)));
  if (flags.Has("help")) {
    plan.help = true;
    return plan;
  }
  DW_ASSIGN_OR_RETURN(plan.unit, UnitName(flags, "disable"));
  plan.root = RootOf(flags, CurrentDirectory());
  plan.dropin = DropInPath(plan.root, plan.unit);
  return plan;
}

absl::Status WriteDropIn(const UnitPlan& plan) {
  std::error_code ec;
  const fs::path dir = fs::path(plan.dropin).parent_path();
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
  const std::string tmp = plan.dropin + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << plan.content;
    out.close();
    if (!out) {
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
    }
  }
  fs::rename(tmp, plan.dropin, ec);  // replaces an earlier one whole
  if (ec) {
    fs::remove(tmp, ec);
    return absl::UnavailableError(
        absl::StrCat("cannot write ", plan.dropin, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status RemoveDropIn(const UnitPlan& plan) {
  std::ifstream in(plan.dropin);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        plan.unit, " has no diskwire drop-in (", plan.dropin, ")"));
  }
  std::string first;
  std::getline(in, first);
  if (!absl::StartsWith(first, kHeader)) {
    return absl::FailedPreconditionError(absl::StrCat(
        plan.dropin, " was not written by diskwire enable: left alone"));
  }
  std::error_code ec;
  fs::remove(plan.dropin, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot remove ", plan.dropin, ": ", ec.message()));
  }
  fs::remove(fs::path(plan.dropin).parent_path(), ec);  // only when empty
  return absl::OkStatus();
}

int EnableCommand(absl::Span<const std::string> args) {
  absl::StatusOr<UnitPlan> plan =
      PlanEnable(args, CurrentDirectory(), SelfExecutable());
  if (!plan.ok()) {
    std::fprintf(stderr, "diskwire enable: %s\n",
                 std::string(plan.status().message()).c_str());
    return absl::IsFailedPrecondition(plan.status()) ? 1 : 2;
  }
  if (plan->help) {
    std::fputs(Help(true).c_str(), stdout);
    return 0;
  }
  for (const std::string& w : plan->warnings)
    std::fprintf(stderr, "diskwire enable: warning: %s\n", w.c_str());
  if (absl::Status s = WriteDropIn(*plan); !s.ok()) {
    std::fprintf(stderr, "diskwire enable: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  std::printf("wrote %s:\n%s", plan->dropin.c_str(), plan->content.c_str());
  return Reload(*plan, "enable");
}

int DisableCommand(absl::Span<const std::string> args) {
  absl::StatusOr<UnitPlan> plan = PlanDisable(args);
  if (!plan.ok()) {
    std::fprintf(stderr, "diskwire disable: %s\n",
                 std::string(plan.status().message()).c_str());
    return 2;
  }
  if (plan->help) {
    std::fputs(Help(false).c_str(), stdout);
    return 0;
  }
  if (absl::Status s = RemoveDropIn(*plan); !s.ok()) {
    std::fprintf(stderr, "diskwire disable: %s\n",
                 std::string(s.message()).c_str());
    return absl::IsNotFound(s) ? 0 : 1;
  }
  std::printf("removed %s\n", plan->dropin.c_str());
  return Reload(*plan, "disable");
}

}  // namespace diskwire
