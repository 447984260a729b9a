// File: cli/exec_paths.h
// Finding files for `diskwire run`: the shim library to preload, and the
// program to exec (as execvp would find it, so that the ELF check looks at
// the same file exec runs).
//
// Thread safety: plain functions; they read the filesystem only.

#ifndef DISKWIRE_CLI_EXEC_PATHS_H_
#define DISKWIRE_CLI_EXEC_PATHS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace diskwire {

// Where libdiskwire.so may sit relative to the diskwire executable
// `self_exe` (the resolved /proc/self/exe), most specific first:
//   <dir>/../shim/libdiskwire.so           the bazel-bin layout
//   <dir>/libdiskwire.so                   side by side
//   <dir>/../lib/diskwire/libdiskwire.so   an install under <prefix>/bin
std::vector<std::string> ShimCandidates(const std::string& self_exe);

// The absolute path of the library to preload: `override_path` (--shim) made
// absolute against `cwd` when given, else the first existing candidate.
// Errors: InvalidArgument when the override is not a readable regular file,
// or when the path holds a space or colon (LD_PRELOAD separators);
// FailedPrecondition listing the candidates when none exists.
absl::StatusOr<std::string> FindShim(
    const std::string& self_exe,
    const std::optional<std::string>& override_path, const std::string& cwd);

// The file exec would run for `command`: itself when it contains '/',
// otherwise the first executable regular file in `path_var` (the PATH value;
// an empty entry is the current directory; unset means
// "/usr/local/bin:/usr/bin:/bin"). Errors: NotFound "CMD: command not found"
// or "CMD: No such file or directory"; PermissionDenied when it exists but is
// not executable.
absl::StatusOr<std::string> ResolveCommand(
    const std::string& command, const std::optional<std::string>& path_var);

// The resolved path of the running executable (/proc/self/exe); "" when
// unreadable.
std::string SelfExecutable();
// The working directory; "/" when it cannot be read (it was removed).
std::string CurrentDirectory();

// `path` made absolute against `cwd` (lexically: no symlinks resolved).
std::string Absolute(const std::string& path, const std::string& cwd);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_EXEC_PATHS_H_
