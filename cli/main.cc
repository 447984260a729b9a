// The `diskwire` command: dispatches to one subcommand per file. To add one,
// write cli/NAME_command.{h,cc} with `int NameCommand(absl::Span<const
// std::string> args)` (args after the subcommand name; returns the exit
// status) and add a line to kSubcommands.

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "cli/check_command.h"
#include "cli/enable_command.h"
#include "cli/format_command.h"
#include "cli/mirror_command.h"
#include "cli/prune_command.h"
#include "cli/run_command.h"
#include "cli/status_command.h"
#include "core/config.h"
#include "core/version.h"

namespace diskwire {
namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*main)(absl::Span<const std::string> args);
};

const Subcommand kSubcommands[] = {
    {"run", "run a program with diskwire preloaded", RunCommand},
    {"status", "processes and sessions on a volume", StatusCommand},
    {"check", "whether a volume will serve, and the settings it supports",
     CheckCommand},
    {"mirror", "copy a send volume to a receive volume", MirrorCommand},
    {"prune", "remove what no live process needs from a volume", PruneCommand},
    {"format", "lay a volume on a block device (a shared LUN) or image",
     FormatCommand},
    {"enable", "put a systemd service under diskwire (a drop-in)",
     EnableCommand},
    {"disable", "remove the drop-in that enable wrote", DisableCommand},
};

std::string MainHelp() {
  std::string text =
      "usage: diskwire COMMAND [ARGS...]\n"
      "\n"
      "diskwire keeps the TCP connections of unmodified, dynamically linked\n"
      "programs alive when the network fails, by carrying their bytes over\n"
      "storage both hosts can reach.\n"
      "\n"
      "Commands:\n";
  for (const Subcommand& c : kSubcommands) {
    absl::StrAppend(&text, "  ", c.name, "\t", c.summary, "\n");
  }
  absl::StrAppend(
      &text,
      "  help [COMMAND]\tthis text, or a command's own\n"
      "  version\tdiskwire's version (also --version)\n"
      "\n"
      "Environment variables read by libdiskwire.so (docs/CONFIG.md; "
      "with none set,\n"
      "diskwire is absent and every call passes straight through):\n");
  for (const VariableInfo& v : Variables()) {
    absl::StrAppend(&text, "  ", v.name, "=", v.syntax, "  (default ",
                    v.default_text, ")\n      ", v.help, "\n");
  }
  absl::StrAppend(&text,
                  "\nExit status: 2 for a usage error; see each command's "
                  "--help for the rest.\n");
  return text;
}

const Subcommand* Find(const std::string& name) {
  for (const Subcommand& c : kSubcommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "diskwire: %s (see diskwire --help)\n", message.c_str());
  return 2;
}

int Main(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("missing command");
  const std::string& first = args[0];
  if (first == "--version" || first == "version") {
    std::printf("diskwire %s\n", kVersion);
    return 0;
  }
  if (first == "--help" || first == "-h" || first == "help") {
    if (first == "help" && args.size() > 1) {
      const Subcommand* c = Find(args[1]);
      if (c == nullptr) return Usage(absl::StrCat("unknown command ", args[1]));
      const std::string help_flag = "--help";
      return c->main(absl::MakeConstSpan(&help_flag, 1));
    }
    std::fputs(MainHelp().c_str(), stdout);
    return 0;
  }
  const Subcommand* c = Find(first);
  if (c == nullptr) {
    return Usage(absl::StrCat(
        first.front() == '-' ? "unknown option " : "unknown command ", first));
  }
  return c->main(absl::MakeConstSpan(args).subspan(1));
}

}  // namespace
}  // namespace diskwire

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return diskwire::Main(args);
}
