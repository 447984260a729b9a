// The POSIX FileOps. Every errno goes through ErrnoError.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/file_ops.h"

namespace diskwire::storage {

absl::Status ErrnoError(int err, absl::string_view what) {
  absl::StatusCode code = absl::ErrnoToStatusCode(err);
  if (err == EIO) code = absl::StatusCode::kUnavailable;  // absl: kUnknown
  if (err == EDQUOT) code = absl::StatusCode::kResourceExhausted;
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err)));
}

namespace {

std::string FdName(absl::string_view op, int fd) {
  return absl::StrCat(op, " fd ", fd);
}

class PosixFileOps final : public FileOps {
 public:
  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    int fd;
    do {
      fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", path));
    return fd;
  }
  absl::Status Close(int fd) override {
    // Linux closes the fd even when close() reports EINTR: never retry.
    if (::close(fd) != 0 && errno != EINTR) {
      return ErrnoError(errno, FdName("close", fd));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> WriteV(int fd, const iovec* iov, int iovcnt) override {
    ssize_t n;
    do {
      n = ::writev(fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError(errno, FdName("write", fd));
    return static_cast<size_t>(n);
  }
  absl::StatusOr<size_t> PRead(int fd, char* buf, size_t n,
                               uint64_t offset) override {
    ssize_t r;
    do {
      r = ::pread(fd, buf, n, static_cast<off_t>(offset));
    } while (r < 0 && errno == EINTR);
    if (r < 0) return ErrnoError(errno, FdName("read", fd));
    return static_cast<size_t>(r);
  }
  absl::Status Sync(int fd) override {
    int r;
    do {
      r = ::fdatasync(fd);
    } while (r != 0 && errno == EINTR);
    if (r != 0) return ErrnoError(errno, FdName("fdatasync", fd));
    return absl::OkStatus();
  }
  absl::Status Truncate(int fd, uint64_t size) override {
    int r;
    do {
      r = ::ftruncate(fd, static_cast<off_t>(size));
    } while (r != 0 && errno == EINTR);
    if (r != 0) return ErrnoError(errno, FdName("ftruncate", fd));
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Size(int fd) override {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError(errno, FdName("fstat", fd));
    return static_cast<uint64_t>(st.st_size);
  }
  absl::StatusOr<uint64_t> LinkCount(int fd) override {
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError(errno, FdName("fstat", fd));
    return static_cast<uint64_t>(st.st_nlink);
  }
  absl::StatusOr<uint64_t> Revalidate(int fd) override {
    struct statx stx;
    if (::statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_SIZE,
                &stx) != 0) {
      return ErrnoError(errno, FdName("statx", fd));
    }
    return static_cast<uint64_t>(stx.stx_size);
  }
  absl::Status Lock(int fd) override {
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    int r;
    do {
      r = ::fcntl(fd, F_OFD_SETLK, &fl);
    } while (r != 0 && errno == EINTR);
    if (r == 0) return absl::OkStatus();
    if (errno == EAGAIN || errno == EACCES) {
      return absl::FailedPreconditionError("locked by another writer");
    }
    return ErrnoError(errno, FdName("lock", fd));
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }
  absl::Status Link(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("link ", from, " to ", to));
    }
    return absl::OkStatus();
  }
  absl::Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("unlink ", path));
    }
    return absl::OkStatus();
  }
  absl::Status MakeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0777) == 0) return absl::OkStatus();
    const int err = errno;
    struct stat st;
    if (err == EEXIST && ::stat(path.c_str(), &st) == 0 &&
        S_ISDIR(st.st_mode)) {
      return absl::OkStatus();
    }
    return ErrnoError(err, absl::StrCat("mkdir ", path));
  }
  absl::Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) {
      return ErrnoError(errno, absl::StrCat("rmdir ", path));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("list ", path));
    return ListDirFd(fd, path);
  }
  absl::Status SyncDir(const std::string& path) override {
    DW_ASSIGN_OR_RETURN(int fd, Open(path, O_RDONLY | O_DIRECTORY, 0));
    int r;
    do {
      r = ::fsync(fd);
    } while (r != 0 && errno == EINTR);
    const int err = errno;
    ::close(fd);
    if (r != 0) return ErrnoError(err, absl::StrCat("fsync ", path));
    return absl::OkStatus();
  }
};

}  // namespace

FileOps* FileOps::Default() {
  static FileOps* const ops = new PosixFileOps();
  return ops;
}

absl::StatusOr<std::vector<std::string>> ListDirFd(int fd,
                                                   const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), &::closedir);
  if (dir == nullptr) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, absl::StrCat("list ", path));
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir.get())) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..")) {
      names.emplace_back(e->d_name);
    }
  }
  if (errno != 0) return ErrnoError(errno, absl::StrCat("list ", path));
  return names;
}

absl::StatusOr<std::string> ReadSmallFile(FileOps& ops, const std::string& path,
                                          size_t max_bytes) {
  DW_ASSIGN_OR_RETURN(int fd, ops.Open(path, O_RDONLY, 0));
  std::string data(max_bytes + 1, '\0');
  size_t have = 0;
  absl::Status status;
  while (have < data.size()) {
    absl::StatusOr<size_t> n =
        ops.PRead(fd, data.data() + have, data.size() - have, have);
    if (!n.ok()) {
      status =
          absl::Status(n.status().code(),
                       absl::StrCat(n.status().message(), " (", path, ")"));
      break;
    }
    if (*n == 0) break;
    have += *n;
  }
  ops.Close(fd).IgnoreError();  // read-only: nothing to lose
  DW_RETURN_IF_ERROR(status);
  if (have > max_bytes) {
    return absl::DataLossError(
        absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
  }
  data.resize(have);
  return data;
}

absl::Status PublishNoReplace(FileOps& ops, const std::string& tmp,
                              const std::string& path) {
  absl::Status s = ops.Link(tmp, path);
  if (absl::IsPermissionDenied(s) || absl::IsUnimplemented(s) ||
      absl::IsFailedPrecondition(s)) {
    // No hard links here (EPERM, ENOSYS, ENOTSUP/EOPNOTSUPP).
    absl::StatusOr<int> existing = ops.Open(path, O_RDONLY, 0);
    if (existing.ok()) {
      ops.Close(*existing).IgnoreError();
      s = absl::AlreadyExistsError(absl::StrCat(path, " exists"));
    } else if (absl::IsNotFound(existing.status())) {
      s = ops.Rename(tmp, path);
      if (s.ok()) return s;
    } else {
      s = existing.status();
    }
  }
  ops.Unlink(tmp).IgnoreError();
  return s;
}

absl::Status WriteAll(FileOps& ops, int fd, absl::string_view data,
                      absl::string_view what) {
  while (!data.empty()) {
    iovec iov = {const_cast<char*>(data.data()), data.size()};
    absl::StatusOr<size_t> n = ops.WriteV(fd, &iov, 1);
    if (!n.ok()) {
      return absl::Status(n.status().code(),
                          absl::StrCat(what, ": ", n.status().message()));
    }
    if (*n == 0) return absl::DataLossError(absl::StrCat(what, ": wrote 0"));
    data.remove_prefix(*n);
  }
  return absl::OkStatus();
}

}  // namespace diskwire::storage
