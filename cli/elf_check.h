// File: cli/elf_check.h
// Will LD_PRELOAD reach a program? `diskwire run` asks before it execs, and
// warns (one line each) when the answer is no: a statically linked program
// has no dynamic loader to preload anything (no PT_INTERP program header), a
// program for another ELF class or machine cannot load our library, a Go
// program makes its socket system calls directly, not through libc, and the
// loader ignores LD_PRELOAD in secure-execution mode (setuid, setgid, or file
// capabilities). A `#!` script is judged by its interpreter.
//
// Thread safety: plain functions.

#ifndef DISKWIRE_CLI_ELF_CHECK_H_
#define DISKWIRE_CLI_ELF_CHECK_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace diskwire {

enum class ElfKind {
  kDynamic,       // Has PT_INTERP: the dynamic loader runs and preloads.
  kStatic,        // No PT_INTERP (static, or static-pie): nothing preloads.
  kGo,            // Built by Go, which makes socket calls without libc.
  kOtherMachine,  // ELF class or machine differs from this program's.
  kNotElf,        // Not an ELF file (a script, or data).
};

// Reads the ELF header and program header table of `path`. Errors: the
// errno of open/read, or DataLoss naming the path for a truncated or
// inconsistent header (never a crash on a hostile file).
absl::StatusOr<ElfKind> InspectElf(const std::string& path);

// Does exec'ing a file with status `st` by a process with real ids
// `uid`/`gid` run in secure-execution mode (AT_SECURE), where the loader
// ignores LD_PRELOAD? `has_file_caps`: the file carries security.capability.
bool SecureExecution(const struct stat& st, uid_t uid, gid_t gid,
                     bool has_file_caps);

// The warnings for exec'ing `path` with a preloaded library, each a sentence
// naming the file; empty when preloading will work. Follows `#!` to the
// interpreter (up to 4 levels). A file that cannot be read gives no warning:
// exec reports that itself.
std::vector<std::string> PreloadWarnings(const std::string& path);

}  // namespace diskwire

#endif  // DISKWIRE_CLI_ELF_CHECK_H_
