#include "storage/open_beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace diskwire::storage {

int OpenBeneathByComponents(int root, const std::string& relative, int flags,
                            mode_t mode) {
  int dir = ::dup(root);
  if (dir < 0) return -1;
  size_t begin = 0;
  for (;;) {
    const size_t slash = relative.find('/', begin);
    const std::string part = relative.substr(
        begin, slash == std::string::npos ? std::string::npos : slash - begin);
    const bool last = slash == std::string::npos;
    if (part == "..") {
      ::close(dir);
      errno = EXDEV;  // as RESOLVE_BENEATH answers an escape
      return -1;
    }
    if (!last && (part.empty() || part == ".")) {
      begin = slash + 1;
      continue;
    }
    const std::string name = part.empty() ? "." : part;
    // O_NOFOLLOW refuses a link as the component opened; with O_PATH it would
    // open the link itself instead, which the fstat below catches.
    const int fd =
        last ? ::openat(dir, name.c_str(), flags | O_NOFOLLOW, mode)
             : ::openat(dir, name.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    struct stat link;
    if (fd < 0 && err == ENOTDIR &&
        ::fstatat(dir, name.c_str(), &link, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(link.st_mode)) {
      err = ELOOP;  // O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a link
    }
    ::close(dir);
    if (fd < 0) {
      errno = err;
      return -1;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || S_ISLNK(st.st_mode)) {
      ::close(fd);
      errno = ELOOP;
      return -1;
    }
    if (last) return fd;
    dir = fd;
    begin = slash + 1;
  }
}

}  // namespace diskwire::storage
