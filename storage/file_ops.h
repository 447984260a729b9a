// File: storage/file_ops.h
// The filesystem calls storage/ makes, in the spirit of leveldb's Env: the
// POSIX implementation for real volumes, and a fault-injecting wrapper
// (fault_injecting_file_ops.h) that scripts ENOSPC, EIO and short writes.
//
// Every method returns OK or an error Status built from errno by one helper
// (ErrnoError), whose message names the operation and path. EINTR is retried
// inside; nothing else is. Implementations are thread-safe.

#ifndef DISKWIRE_STORAGE_FILE_OPS_H_
#define DISKWIRE_STORAGE_FILE_OPS_H_

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace diskwire::storage {

// errno → Status: "<what>: <strerror>", code from absl::ErrnoToStatusCode
// except EIO → Unavailable, EDQUOT → ResourceExhausted (ENOSPC →
// ResourceExhausted, ENOENT → NotFound, EEXIST → AlreadyExists...).
absl::Status ErrnoError(int err, absl::string_view what);

// Told of every descriptor an observed FileOps opens and closes: the engine
// marks them as its own, so that the application cannot close them and a
// forked child lets go of its copies (core/engine_fork.cc).
class FdObserver {
 public:
  virtual ~FdObserver() = default;
  virtual void Opened(int fd) = 0;
  // Before the close: once closed, the number may name the application's.
  virtual void Closing(int fd) = 0;
};

class FileOps {
 public:
  virtual ~FileOps() = default;

  // The POSIX implementation; never deleted.
  static FileOps* Default();
  // POSIX calls confined to the directories `roots` (each may itself be
  // reached through links): paths must lie below one of them, and no
  // component below it may be a symbolic link (FailedPrecondition naming the
  // path). Names are created and removed relative to their parent directory,
  // never through a link. The roots must exist.
  static absl::StatusOr<std::unique_ptr<FileOps>> Confined(
      const std::vector<std::string>& roots);
  // `base`'s calls, with every fd that Open() returns and Close() takes told
  // to `observer`. Both must outlive the result.
  static std::unique_ptr<FileOps> Observed(FileOps* base, FdObserver* observer);

  /** @see man 2 open. Returns the fd. O_CLOEXEC and O_NONBLOCK are always
   * added (the latter so that a FIFO planted in a volume cannot block). */
  virtual absl::StatusOr<int> Open(const std::string& path, int flags,
                                   mode_t mode) = 0;
  virtual absl::Status Close(int fd) = 0;
  /** @see man 2 writev. ONE call: returns the bytes written, maybe fewer than
   * asked (a short write); the caller loops. */
  virtual absl::StatusOr<size_t> WriteV(int fd, const iovec* iov,
                                        int iovcnt) = 0;
  /** @see man 2 pread. One call; 0 at end of file. */
  virtual absl::StatusOr<size_t> PRead(int fd, char* buf, size_t n,
                                       uint64_t offset) = 0;
  /** fdatasync(2). */
  virtual absl::Status Sync(int fd) = 0;
  virtual absl::Status Truncate(int fd, uint64_t size) = 0;
  /** fstat(2) size. On network filesystems it may be stale: read past it. */
  virtual absl::StatusOr<uint64_t> Size(int fd) = 0;
  /** fstat(2) st_nlink: 0 once the file has been deleted. */
  virtual absl::StatusOr<uint64_t> LinkCount(int fd) = 0;
  /** statx(AT_STATX_FORCE_SYNC) of `fd`: makes a network or FUSE client drop
   * its cached attributes, so that reads are no longer clamped at a stale
   * file size. Returns the fresh size (which callers must still not trust
   * alone: read past it). */
  virtual absl::StatusOr<uint64_t> Revalidate(int fd) = 0;
  /** Non-blocking exclusive OFD lock (fcntl F_OFD_SETLK) on the whole file,
   * held until the fd is closed. FailedPrecondition when another open file
   * description holds it. */
  virtual absl::Status Lock(int fd) = 0;
  /** Replaces `to` atomically. */
  virtual absl::Status Rename(const std::string& from,
                              const std::string& to) = 0;
  /** link(2): AlreadyExists when `to` exists (an atomic no-replace publish). */
  virtual absl::Status Link(const std::string& from, const std::string& to) = 0;
  virtual absl::Status Unlink(const std::string& path) = 0;
  /** mkdir(2) with 0777 & umask; OK when a directory already exists there. */
  virtual absl::Status MakeDir(const std::string& path) = 0;
  virtual absl::Status RemoveDir(const std::string& path) = 0;
  /** Entry names except "." and "..", unsorted. NotFound when absent. */
  virtual absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) = 0;
  /** fsync(2) of a directory, making renames and creations durable. */
  virtual absl::Status SyncDir(const std::string& path) = 0;
};

// The entry names of the directory open as `fd` (which it takes and closes),
// except "." and ".."; errors name `path`.
absl::StatusOr<std::vector<std::string>> ListDirFd(int fd,
                                                   const std::string& path);
// Reads the whole small file at `path` (≤ max_bytes, else DataLoss).
absl::StatusOr<std::string> ReadSmallFile(FileOps& ops, const std::string& path,
                                          size_t max_bytes);
// Publishes `tmp` as `path` without replacing an existing `path`: link()
// then unlink(tmp) (AlreadyExists if `path` exists). On filesystems without
// hard links (EPERM, ENOTSUP, ENOSYS) it falls back to checking that `path`
// is absent and renaming, which is not atomic against a concurrent publisher
// of the same name. `tmp` is gone afterwards in every case.
absl::Status PublishNoReplace(FileOps& ops, const std::string& tmp,
                              const std::string& path);
// Writes all of `data` to `fd`, looping over short writes.
absl::Status WriteAll(FileOps& ops, int fd, absl::string_view data,
                      absl::string_view what);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_FILE_OPS_H_
