#include "cli/run_command.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "cli/elf_check.h"
#include "cli/exec_paths.h"
#include "cli/flags.h"
#include "cli/settings.h"
#include "core/config.h"

namespace diskwire {
namespace {

// One flag per variable, plus --shim, --help and --quiet (-q). Built once;
// never freed.
const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec>* specs = [] {
    auto* s = new std::vector<FlagSpec>(VariableFlagSpecs());
    s->push_back({"shim", true});
    s->push_back({"help", false});
    s->push_back({"quiet", false, 'q'});
    return s;
  }();
  return *specs;
}

}  // namespace

absl::StatusOr<RunPlan> PlanRun(absl::Span<const std::string> args,
                                const RunContext& context) {
  DW_ASSIGN_OR_RETURN(ParsedFlags flags, ParseFlags(args, Specs()));
  RunPlan plan;
  if (flags.Has("help")) {
    plan.help = true;
    return plan;
  }
  if (flags.positional.empty()) {
    return absl::InvalidArgumentError(
        "missing the program to run (diskwire run [FLAGS] -- CMD [ARGS...])");
  }
  plan.env = context.environ;
  DW_RETURN_IF_ERROR(ApplySettingFlags(flags, context.cwd, &plan.env));
  DW_ASSIGN_OR_RETURN(Config config, CheckSettings(plan.env));

  DW_ASSIGN_OR_RETURN(
      std::string shim,
      FindShim(context.self_exe, flags.Get("shim"), context.cwd));
  SetEnv(&plan.env, "LD_PRELOAD",
         AppendPreload(GetEnv(plan.env, "LD_PRELOAD"), shim));

  DW_ASSIGN_OR_RETURN(
      plan.path, ResolveCommand(flags.positional[0], GetEnv(plan.env, "PATH")));
  plan.argv = flags.positional;
  plan.warnings = PreloadWarnings(plan.path);
  plan.warnings.insert(plan.warnings.end(), config.warnings.begin(),
                       config.warnings.end());
  return plan;
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kFailedPrecondition:
      return 1;
    case absl::StatusCode::kNotFound:
      return 127;
    case absl::StatusCode::kPermissionDenied:
      return 126;
    default:
      return 2;
  }
}

int RunCommand(absl::Span<const std::string> args) {
  RunContext context;
  for (char** e = environ; *e != nullptr; ++e) context.environ.push_back(*e);
  context.cwd = CurrentDirectory();
  context.self_exe = SelfExecutable();
  absl::StatusOr<RunPlan> plan = PlanRun(args, context);
  if (!plan.ok()) {
    std::fprintf(stderr, "diskwire run: %s\n",
                 std::string(plan.status().message()).c_str());
    return ExitCodeFor(plan.status());
  }
  if (plan->help) {
    std::fputs(RunHelp().c_str(), stdout);
    return 0;
  }
  for (const std::string& w : plan->warnings) {
    std::fprintf(stderr, "diskwire run: warning: %s\n", w.c_str());
  }
  std::vector<char*> argv, envp;
  for (std::string& a : plan->argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : plan->env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::fflush(stdout);
  execve(plan->path.c_str(), argv.data(), envp.data());
  int err = errno;
  std::fprintf(stderr, "diskwire run: cannot execute %s: %s\n",
               plan->path.c_str(), std::strerror(err));
  return err == ENOENT ? 127 : 126;
}

std::string RunHelp() {
  std::string text =
      "usage: diskwire run [FLAGS] [--] CMD [ARGS...]\n"
      "\n"
      "Runs CMD with libdiskwire.so preloaded (appended to LD_PRELOAD) and "
      "the\n"
      "DISKWIRE_* variables below set from the flags. A flag overrides the\n"
      "variable already in the environment; variables not given as flags "
      "are\n"
      "kept. The whole configuration is checked before CMD starts.\n"
      "Relative paths are made absolute (for --log, a path needs a '/', as "
      "in\n"
      "./diskwire.log). Flags take --name VALUE or --name=VALUE.\n"
      "\n"
      "Flags:\n";
  for (const VariableInfo& v : Variables()) {
    absl::StrAppend(&text, "  --", FlagNameFor(v.name), " ", v.syntax, "\n",
                    "      ", v.name, ", default ", v.default_text, ". ",
                    v.help, "\n");
  }
  absl::StrAppend(
      &text,
      "  --shim PATH\n"
      "      The library to preload. Default: the first of "
      "<dir>/../shim/libdiskwire.so,\n"
      "      <dir>/libdiskwire.so, <dir>/../lib/diskwire/libdiskwire.so, "
      "where <dir>\n"
      "      holds the diskwire executable.\n"
      "  -q, --quiet\n"
      "      Not a line from diskwire, anywhere (DISKWIRE_LOG=off).\n"
      "  --help\n"
      "      This text.\n"
      "\n"
      "Warnings (CMD still runs): CMD is statically linked, a Go program, "
      "built for\n"
      "another machine, or setuid/setgid/with file capabilities: "
      "LD_PRELOAD cannot\n"
      "reach its socket calls. A #! script is judged by its interpreter.\n"
      "\n"
      "Exit status: CMD's own; 2 for a usage or configuration error; 1 when\n"
      "libdiskwire.so is not found; 127 when CMD is not found; 126 when it "
      "cannot\n"
      "be executed.\n"
      "\n"
      "Example:\n"
      "  diskwire run --volume /mnt/shared/dw --select 7000 -- nc db1 7000\n");
  return text;
}

}  // namespace diskwire
