#include "cli/elf_check.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

namespace diskwire {
namespace {

constexpr int kMaxScriptDepth = 4;
constexpr size_t kMaxProgramHeaders = 4096;

#if defined(__x86_64__)
constexpr uint16_t kOwnMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kOwnMachine = EM_AARCH64;
#elif defined(__i386__)
constexpr uint16_t kOwnMachine = EM_386;
#else
#error "diskwire: add this architecture's EM_* constant"
#endif
constexpr unsigned char kOwnClass =
    sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32;

// Reads exactly `len` bytes at `offset`; false on a short file.
absl::StatusOr<bool> ReadAt(int fd, void* buf, size_t len, off_t offset) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, static_cast<char*>(buf) + got, len - got,
                      offset + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "read");
    if (n == 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

size_t Align4(size_t n) { return (n + 3) & ~size_t{3}; }

// Does the PT_NOTE segment at `offset` of `size` bytes hold the Go
// toolchain's build-id note (name "Go", type 4)? Unreadable or malformed
// notes count as "no".
bool HasGoNote(int fd, uint64_t offset, uint64_t size) {
  constexpr size_t kMaxNoteBytes = 4096;
  constexpr uint32_t kGoBuildIdTag = 4;
  std::string buf(std::min<uint64_t>(size, kMaxNoteBytes), '\0');
  absl::StatusOr<bool> whole =
      ReadAt(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
  if (!whole.ok() || !*whole) return false;
  size_t pos = 0;
  while (pos + 12 <= buf.size()) {
    uint32_t namesz, descsz, type;
    std::memcpy(&namesz, &buf[pos], 4);
    std::memcpy(&descsz, &buf[pos + 4], 4);
    std::memcpy(&type, &buf[pos + 8], 4);
    size_t name = pos + 12;
    size_t next = name + Align4(namesz) + Align4(descsz);
    if (next > buf.size()) return false;
    if (namesz == 4 && std::memcmp(&buf[name], "Go\0\0", 4) == 0 &&
        type == kGoBuildIdTag) {
      return true;
    }
    pos = next;
  }
  return false;
}

// Looks for PT_INTERP and Go's note in the program header table of an ELF
// file of `Ehdr`/`Phdr` types (32- or 64-bit).
template <typename Ehdr, typename Phdr>
absl::StatusOr<ElfKind> ScanProgramHeaders(int fd, const std::string& path) {
  Ehdr eh;
  DW_ASSIGN_OR_RETURN(bool whole, ReadAt(fd, &eh, sizeof(eh), 0));
  if (!whole) {
    return absl::DataLossError(absl::StrCat(path, ": truncated ELF header"));
  }
  if (eh.e_machine != kOwnMachine) return ElfKind::kOtherMachine;
  if (eh.e_phnum == 0) return ElfKind::kStatic;
  if (eh.e_phentsize != sizeof(Phdr) || eh.e_phnum > kMaxProgramHeaders) {
    return absl::DataLossError(
        absl::StrCat(path, ": inconsistent program header table"));
  }
  bool interp = false;
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    Phdr ph;
    DW_ASSIGN_OR_RETURN(
        bool ok, ReadAt(fd, &ph, sizeof(ph),
                        static_cast<off_t>(eh.e_phoff + i * sizeof(Phdr))));
    if (!ok) {
      return absl::DataLossError(
          absl::StrCat(path, ": truncated program header table"));
    }
    if (ph.p_type == PT_INTERP) interp = true;
    if (ph.p_type == PT_NOTE && HasGoNote(fd, ph.p_offset, ph.p_filesz)) {
      return ElfKind::kGo;
    }
  }
  return interp ? ElfKind::kDynamic : ElfKind::kStatic;
}

bool HasFileCaps(const std::string& path) {
  return getxattr(path.c_str(), "security.capability", nullptr, 0) > 0;
}

// The interpreter of a "#!" script, or "" when `path` is not one.
std::string ScriptInterpreter(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256] = {};
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n < 3 || buf[0] != '#' || buf[1] != '!') return "";
  absl::string_view line(buf + 2, static_cast<size_t>(n - 2));
  line = line.substr(0, line.find('\n'));
  line = absl::StripLeadingAsciiWhitespace(line);
  return std::string(line.substr(0, line.find_first_of(" \t")));
}

}  // namespace

absl::StatusOr<ElfKind> InspectElf(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, path);
  unsigned char ident[EI_NIDENT];
  absl::StatusOr<bool> whole = ReadAt(fd, ident, sizeof(ident), 0);
  absl::StatusOr<ElfKind> kind = ElfKind::kNotElf;
  if (!whole.ok()) {
    kind = whole.status();
  } else if (*whole && std::memcmp(ident, ELFMAG, SELFMAG) == 0) {
    if (ident[EI_CLASS] != kOwnClass) {
      kind = ElfKind::kOtherMachine;
    } else if (kOwnClass == ELFCLASS64) {
      kind = ScanProgramHeaders<Elf64_Ehdr, Elf64_Phdr>(fd, path);
    } else {
      kind = ScanProgramHeaders<Elf32_Ehdr, Elf32_Phdr>(fd, path);
    }
  }
  close(fd);
  return kind;
}

bool SecureExecution(const struct stat& st, uid_t uid, gid_t gid,
                     bool has_file_caps) {
  if ((st.st_mode & S_ISUID) != 0 && st.st_uid != uid) return true;
  if ((st.st_mode & S_ISGID) != 0 && st.st_gid != gid) return true;
  return has_file_caps && uid != 0;
}

std::vector<std::string> PreloadWarnings(const std::string& path) {
  std::vector<std::string> warnings;
  std::string file = path;
  for (int depth = 0; depth <= kMaxScriptDepth; ++depth) {
    struct stat st;
    if (stat(file.c_str(), &st) != 0) return warnings;
    if (SecureExecution(st, getuid(), getgid(), HasFileCaps(file))) {
      warnings.push_back(absl::StrCat(
          file,
          " runs setuid, setgid or with file capabilities: the loader ignores "
          "LD_PRELOAD for it, so diskwire will not carry its connections"));
    }
    absl::StatusOr<ElfKind> kind = InspectElf(file);
    if (!kind.ok()) {
      warnings.push_back(absl::StrCat(kind.status().message(),
                                      "; cannot tell whether diskwire can "
                                      "preload into it"));
      return warnings;
    }
    switch (*kind) {
      case ElfKind::kDynamic:
        return warnings;
      case ElfKind::kStatic:
        warnings.push_back(absl::StrCat(
            file,
            " is statically linked: LD_PRELOAD has no effect on it, so "
            "diskwire will not carry its connections"));
        return warnings;
      case ElfKind::kGo:
        warnings.push_back(absl::StrCat(
            file,
            " is a Go program: Go makes its socket calls without libc, so "
            "diskwire will not carry its connections"));
        return warnings;
      case ElfKind::kOtherMachine:
        warnings.push_back(absl::StrCat(
            file,
            " is built for another ELF class or machine: libdiskwire.so "
            "cannot load into it"));
        return warnings;
      case ElfKind::kNotElf: {
        std::string interpreter = ScriptInterpreter(file);
        if (interpreter.empty()) return warnings;  // exec decides.
        file = interpreter;
        break;
      }
    }
  }
  return warnings;
}

}  // namespace diskwire
