#include "core/socket_holders.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace diskwire {
namespace {

// Does process `pid` have a descriptor whose /proc link reads `target`?
// Unknown (unreadable) counts as yes; a process that is gone, as no.
bool Holds(const std::string& pid, const std::string& target) {
  const std::string dir_path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) return errno == EACCES || errno == EPERM;
  bool found = false;
  char link[64];
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string path = absl::StrCat(dir_path, "/", e->d_name);
    const ssize_t n = readlink(path.c_str(), link, sizeof(link));
    if (n == static_cast<ssize_t>(target.size()) &&
        memcmp(link, target.data(), n) == 0) {
      found = true;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

absl::StatusOr<bool> OtherProcessHolds(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat");
  // Sockets read "socket:[INODE]"; other files would need the path, which
  // diskwire never asks about.
  const std::string target = absl::StrCat("socket:[", st.st_ino, "]");
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return absl::ErrnoToStatus(errno, "opendir /proc");
  const std::string self = absl::StrCat(getpid());
  bool held = false;
  while (dirent* e = readdir(proc)) {
    uint32_t pid;
    if (!absl::SimpleAtoi(e->d_name, &pid) || self == e->d_name) continue;
    if (Holds(e->d_name, target)) {
      held = true;
      break;
    }
  }
  closedir(proc);
  return held;
}

}  // namespace diskwire
