// File: storage/fault_injecting_file_ops.h
// A FileOps that forwards to another one, except for scripted faults:
//   FaultInjectingFileOps ops(FileOps::Default());
//   ops.FailNext(FileOp::kWrite, ENOSPC);        // next write → ENOSPC
//   ops.ShortWriteNext(100);                      // next write stops at 100 B
//   ops.FailNext(FileOp::kSync, EIO, /*times=*/3, "/seg-");
// Faults apply in the order scripted, to the first matching call (by
// operation and, when given, a substring of the path; fd-based calls match the
// path the fd was opened with). Thread-safe.

#ifndef DISKWIRE_STORAGE_FAULT_INJECTING_FILE_OPS_H_
#define DISKWIRE_STORAGE_FAULT_INJECTING_FILE_OPS_H_

#include <deque>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "storage/file_ops.h"

namespace diskwire::storage {

enum class FileOp {
  kOpen,
  kWrite,
  kRead,
  kSync,
  kTruncate,
  kRename,
  kLink,
  kUnlink,
  kMakeDir,
  kListDir,
  kLock,
};

class FaultInjectingFileOps final : public FileOps {
 public:
  // `base` must outlive this object.
  explicit FaultInjectingFileOps(FileOps* base) : base_(base) {}

  // The next `times` calls of `op` (on paths containing `path_part`) fail
  // with `err` and do nothing.
  void FailNext(FileOp op, int err, int times = 1, std::string path_part = "");
  // The next write writes at most `max_bytes` (then returns that count).
  void ShortWriteNext(size_t max_bytes, std::string path_part = "");
  // Calls of each op seen so far (faulted or not).
  int Calls(FileOp op) const;

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override;
  absl::Status Close(int fd) override;
  absl::StatusOr<size_t> WriteV(int fd, const iovec* iov, int iovcnt) override;
  absl::StatusOr<size_t> PRead(int fd, char* buf, size_t n,
                               uint64_t offset) override;
  absl::Status Sync(int fd) override;
  absl::Status Truncate(int fd, uint64_t size) override;
  absl::StatusOr<uint64_t> Size(int fd) override { return base_->Size(fd); }
  absl::StatusOr<uint64_t> LinkCount(int fd) override {
    return base_->LinkCount(fd);
  }
  absl::StatusOr<uint64_t> Revalidate(int fd) override {
    return base_->Revalidate(fd);
  }
  absl::Status Lock(int fd) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status Link(const std::string& from, const std::string& to) override;
  absl::Status Unlink(const std::string& path) override;
  absl::Status MakeDir(const std::string& path) override;
  absl::Status RemoveDir(const std::string& path) override {
    return base_->RemoveDir(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) override;
  absl::Status SyncDir(const std::string& path) override;

 private:
  struct Fault {
    FileOp op;
    int err;  // 0: short write of `max_bytes`
    size_t max_bytes;
    int times;
    std::string path_part;
  };
  // Consumes and returns the first fault matching (op, path), if any.
  bool Take(FileOp op, const std::string& path, Fault* out);
  std::string PathOf(int fd);

  FileOps* const base_;
  mutable absl::Mutex mu_;
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::map<int, std::string> paths_ ABSL_GUARDED_BY(mu_);
  std::map<FileOp, int> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_FAULT_INJECTING_FILE_OPS_H_
