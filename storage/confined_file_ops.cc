// FileOps confined to a volume's directory: no path inside the volume may
// pass through a symbolic link (docs/FORMAT.md, "Links"). Every path is
// resolved from the volume's directory fd with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), and names are created, linked and removed relative to
// their parent directory's fd, so that a link planted anywhere in the volume
// (a channel directory pointing at /etc, say) is refused, never followed.
//
// What the volume's directory grants its group and others, every file and
// directory created below it grants too, whatever the creating process's
// umask: processes of different users (a root client, a database server
// running as its own user) write each other's inboxes and prune each other's
// channels on a volume the operator made shared (docs/CONFIG.md, "A volume
// shared by processes of several users").

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/file_ops.h"
#include "storage/forwarding_file_ops.h"
#include "storage/open_beneath.h"

namespace diskwire::storage {
namespace {

constexpr uint64_t kResolve =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

absl::Status PathError(int err, absl::string_view what,
                       const std::string& path) {
  if (err == ELOOP || err == EXDEV) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path,
                     ": passes through a symbolic link, which diskwire never "
                     "follows inside a volume"));
  }
  return ErrnoError(err, absl::StrCat(what, " ", path));
}

// An fd that closes itself.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// A volume's directory (no trailing '/').
struct Root {
  std::string path;
  mode_t shared;  // the group and others bits of its mode
};

// A path below one of the roots: that root, and the path relative to it. The
// root is opened afresh for each operation rather than held open: a program
// under the shim may close every descriptor it did not open itself (sshd and
// other daemons do), or reuse its number.
struct Beneath {
  const Root* root;
  std::string rel;
};

// The mode that adds the bits of `shared` that `st` lacks, for what this
// process created (a name another user made is not its to change); none when
// nothing is to change. A chmod that fails leaves the umask's mode: another
// user's process then names the path it cannot open.
std::optional<mode_t> SharedMode(const struct stat& st, mode_t shared) {
  if (st.st_uid != ::geteuid() || (st.st_mode & shared) == shared)
    return std::nullopt;
  return (st.st_mode & 07777) | shared;
}

class ConfinedFileOps final : public ForwardingFileOps {
 public:
  explicit ConfinedFileOps(std::vector<Root> roots)
      : ForwardingFileOps(FileOps::Default()), roots_(std::move(roots)) {}

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    DW_ASSIGN_OR_RETURN(Beneath b, Relative(path));
    DW_ASSIGN_OR_RETURN(int fd, OpenBeneath(b, flags | O_CLOEXEC | O_NONBLOCK,
                                            mode, "open", path));
    struct stat st;
    if ((flags & O_CREAT) != 0 && b.root->shared != 0 &&
        ::fstat(fd, &st) == 0) {
      // Read and write as asked: never execute.
      if (auto m = SharedMode(st, b.root->shared & mode & 0066))
        std::ignore = ::fchmod(fd, *m);  // SharedMode says why
    }
    return fd;
  }
  // Close, WriteV, PRead, Sync, Truncate, Size, LinkCount, Revalidate and
  // Lock take an fd: ForwardingFileOps hands them to the POSIX calls.

  absl::Status Rename(const std::string& from, const std::string& to) override {
    std::string from_name, to_name;
    DW_ASSIGN_OR_RETURN(int from_dir, OpenParent(from, &from_name, "rename"));
    Fd from_fd(from_dir);
    DW_ASSIGN_OR_RETURN(int to_dir, OpenParent(to, &to_name, "rename"));
    Fd to_fd(to_dir);
    if (::renameat(from_dir, from_name.c_str(), to_dir, to_name.c_str()) != 0)
      return ErrnoError(errno, absl::StrCat("rename ", from, " to ", to));
    return absl::OkStatus();
  }
  absl::Status Link(const std::string& from, const std::string& to) override {
    std::string from_name, to_name;
    DW_ASSIGN_OR_RETURN(int from_dir, OpenParent(from, &from_name, "link"));
    Fd from_fd(from_dir);
    DW_ASSIGN_OR_RETURN(int to_dir, OpenParent(to, &to_name, "link"));
    Fd to_fd(to_dir);
    // No AT_SYMLINK_FOLLOW: a link is linked as itself, never its target.
    if (::linkat(from_dir, from_name.c_str(), to_dir, to_name.c_str(), 0) != 0)
      return ErrnoError(errno, absl::StrCat("link ", from, " to ", to));
    return absl::OkStatus();
  }
  absl::Status Unlink(const std::string& path) override {
    return AtParent(path, "unlink", [](int dir, const char* name) {
      return ::unlinkat(dir, name, 0);
    });
  }
  absl::Status MakeDir(const std::string& path) override {
    std::string name;
    DW_ASSIGN_OR_RETURN(int dir, OpenParent(path, &name, "mkdir"));
    Fd dir_fd(dir);
    struct stat st;
    if (name == ".") return absl::OkStatus();
    if (::mkdirat(dir, name.c_str(), 0777) == 0) {
      DW_ASSIGN_OR_RETURN(Beneath b, Relative(path));
      if (b.root->shared != 0 &&
          ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (auto m = SharedMode(st, b.root->shared))
          std::ignore = ::fchmodat(dir, name.c_str(), *m, 0);
      }
      return absl::OkStatus();
    }
    const int err = errno;
    if (err == EEXIST &&
        ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(st.st_mode)) return absl::OkStatus();
      if (S_ISLNK(st.st_mode)) return PathError(ELOOP, "mkdir", path);
    }
    return ErrnoError(err, absl::StrCat("mkdir ", path));
  }
  absl::Status RemoveDir(const std::string& path) override {
    return AtParent(path, "rmdir", [](int dir, const char* name) {
      return ::unlinkat(dir, name, AT_REMOVEDIR);
    });
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) override {
    DW_ASSIGN_OR_RETURN(Beneath b, Relative(path));
    DW_ASSIGN_OR_RETURN(
        int fd,
        OpenBeneath(b, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, "list", path));
    return ListDirFd(fd, path);
  }
  absl::Status SyncDir(const std::string& path) override {
    DW_ASSIGN_OR_RETURN(int fd, Open(path, O_RDONLY | O_DIRECTORY, 0));
    absl::Status s = base()->Sync(fd);
    ::close(fd);
    return s;
  }

 private:
  // `path` relative to the root it lies below ("." for a root itself).
  absl::StatusOr<Beneath> Relative(const std::string& path) const {
    for (const Root& r : roots_) {
      if (path == r.path) return Beneath{&r, "."};
      if (absl::StartsWith(path, r.path) && path.size() > r.path.size() + 1 &&
          path[r.path.size()] == '/') {
        return Beneath{&r, path.substr(r.path.size() + 1)};
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is outside the volume ", roots_.front().path));
  }

  absl::StatusOr<int> OpenBeneath(const Beneath& b, int flags, mode_t mode,
                                  absl::string_view what,
                                  const std::string& path) const {
    open_how how = {};
    how.flags = static_cast<uint64_t>(flags);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = kResolve;
    // The volume's own directory may be reached through links.
    const int root =
        ::open(b.root->path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
      return ErrnoError(errno, absl::StrCat(what, " ", b.root->path));
    long fd;
    do {
      fd = ::syscall(SYS_openat2, root, b.rel.c_str(), &how, sizeof(how));
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    if (fd < 0 && errno == ENOSYS) {
      // No openat2 (Linux before 5.6, a seccomp filter, valgrind): the same
      // rule, one component at a time.
      do {
        fd = OpenBeneathByComponents(root, b.rel, flags, how.mode);
      } while (fd < 0 && errno == EINTR);
    }
    const int err = errno;
    ::close(root);
    if (fd < 0) return PathError(err, what, path);
    return static_cast<int>(fd);
  }

  // Opens the directory that holds `path`'s last component; *name is that
  // component ("." for the volume's directory itself).
  absl::StatusOr<int> OpenParent(const std::string& path, std::string* name,
                                 absl::string_view what) const {
    DW_ASSIGN_OR_RETURN(Beneath b, Relative(path));
    const size_t slash = b.rel.rfind('/');
    *name = slash == std::string::npos ? b.rel : b.rel.substr(slash + 1);
    b.rel = slash == std::string::npos ? "." : b.rel.substr(0, slash);
    return OpenBeneath(b, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, what, path);
  }

  template <typename Call>
  absl::Status AtParent(const std::string& path, absl::string_view what,
                        Call call) const {
    std::string name;
    DW_ASSIGN_OR_RETURN(int dir, OpenParent(path, &name, what));
    Fd dir_fd(dir);
    if (call(dir, name.c_str()) != 0)
      return ErrnoError(errno, absl::StrCat(what, " ", path));
    return absl::OkStatus();
  }

  const std::vector<Root> roots_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileOps>> FileOps::Confined(
    const std::vector<std::string>& roots) {
  std::vector<Root> checked;
  for (const std::string& root : roots) {
    const int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", root));
    struct stat st;
    const int got = ::fstat(fd, &st);
    const int err = errno;
    ::close(fd);
    if (got != 0) return ErrnoError(err, absl::StrCat("stat ", root));
    std::string trimmed = root;
    while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
    checked.push_back(
        Root{std::move(trimmed), st.st_mode & (S_IRWXG | S_IRWXO)});
  }
  if (checked.empty())
    return absl::InvalidArgumentError("no volume directory to confine to");
  return std::unique_ptr<FileOps>(new ConfinedFileOps(std::move(checked)));
}

}  // namespace diskwire::storage
