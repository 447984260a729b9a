#include "cli/exec_paths.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace diskwire {
namespace {

constexpr char kShimName[] = "libdiskwire.so";
constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string SelfExecutable() {
  char buf[PATH_MAX + 1];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string CurrentDirectory() {
  char buf[PATH_MAX + 1];
  return getcwd(buf, sizeof(buf)) != nullptr ? std::string(buf) : "/";
}

std::string Absolute(const std::string& path, const std::string& cwd) {
  if (path.empty() || path.front() == '/') return path;
  std::string rest = path;
  while (rest.rfind("./", 0) == 0) rest = rest.substr(2);
  if (rest.empty() || rest == ".") return cwd;
  return cwd == "/" ? absl::StrCat("/", rest) : absl::StrCat(cwd, "/", rest);
}

std::vector<std::string> ShimCandidates(const std::string& self_exe) {
  std::string dir = Dirname(self_exe);
  return {absl::StrCat(dir, "/../shim/", kShimName),
          absl::StrCat(dir, "/", kShimName),
          absl::StrCat(dir, "/../lib/diskwire/", kShimName)};
}

absl::StatusOr<std::string> FindShim(
    const std::string& self_exe,
    const std::optional<std::string>& override_path, const std::string& cwd) {
  std::string found;
  if (override_path.has_value()) {
    found = Absolute(*override_path, cwd);
    if (access(found.c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shim: cannot use \"", *override_path, "\": ", strerror(errno)));
    }
    if (!IsRegularFile(found)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shim: \"", *override_path, "\" is not a regular file"));
    }
  } else {
    std::vector<std::string> candidates = ShimCandidates(self_exe);
    for (const std::string& c : candidates) {
      if (IsRegularFile(c)) {
        found = c;
        break;
      }
    }
    if (found.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot find ", kShimName, " (looked for ",
                       absl::StrJoin(candidates, ", "),
                       "); build //shim:libdiskwire.so or pass --shim PATH"));
    }
  }
  if (found.find_first_of(": ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", found,
                     "\" cannot be preloaded: LD_PRELOAD splits paths at "
                     "spaces and colons"));
  }
  return found;
}

absl::StatusOr<std::string> ResolveCommand(
    const std::string& command, const std::optional<std::string>& path_var) {
  if (command.empty()) {
    return absl::NotFoundError("\"\": command not found");
  }
  if (command.find('/') != std::string::npos) {
    struct stat st;
    if (stat(command.c_str(), &st) != 0) {
      return absl::ErrnoToStatus(errno, command);
    }
    if (!S_ISREG(st.st_mode) || access(command.c_str(), X_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat(command, ": not an executable file"));
    }
    return command;
  }
  bool seen_unexecutable = false;
  for (absl::string_view dir :
       absl::StrSplit(path_var.value_or(kDefaultPath), ':')) {
    std::string candidate =
        dir.empty() ? command : absl::StrCat(dir, "/", command);
    if (!IsRegularFile(candidate)) continue;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    seen_unexecutable = true;
  }
  if (seen_unexecutable) {
    return absl::PermissionDeniedError(
        absl::StrCat(command, ": not an executable file"));
  }
  return absl::NotFoundError(absl::StrCat(command, ": command not found"));
}

}  // namespace diskwire
