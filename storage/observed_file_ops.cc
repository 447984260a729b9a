// FileOps::Observed: a FileOps that tells an FdObserver of the descriptors it
// opens and closes, and otherwise hands every call to the one it wraps.

#include <memory>
#include <string>
#include <vector>

#include "storage/file_ops.h"

namespace diskwire::storage {
namespace {

class ObservedFileOps final : public FileOps {
 public:
  ObservedFileOps(FileOps* base, FdObserver* observer)
      : base_(base), observer_(observer) {}

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    absl::StatusOr<int> fd = base_->Open(path, flags, mode);
    if (fd.ok()) observer_->Opened(*fd);
    return fd;
  }
  absl::Status Close(int fd) override {
    observer_->Closing(fd);
    return base_->Close(fd);
  }
  absl::StatusOr<size_t> WriteV(int fd, const iovec* iov, int iovcnt) override {
    return base_->WriteV(fd, iov, iovcnt);
  }
  absl::StatusOr<size_t> PRead(int fd, char* buf, size_t n,
                               uint64_t offset) override {
    return base_->PRead(fd, buf, n, offset);
  }
  absl::Status Sync(int fd) override { return base_->Sync(fd); }
  absl::Status Truncate(int fd, uint64_t size) override {
    return base_->Truncate(fd, size);
  }
  absl::StatusOr<uint64_t> Size(int fd) override { return base_->Size(fd); }
  absl::StatusOr<uint64_t> LinkCount(int fd) override {
    return base_->LinkCount(fd);
  }
  absl::StatusOr<uint64_t> Revalidate(int fd) override {
    return base_->Revalidate(fd);
  }
  absl::Status Lock(int fd) override { return base_->Lock(fd); }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    return base_->Rename(from, to);
  }
  absl::Status Link(const std::string& from, const std::string& to) override {
    return base_->Link(from, to);
  }
  absl::Status Unlink(const std::string& path) override {
    return base_->Unlink(path);
  }
  absl::Status MakeDir(const std::string& path) override {
    return base_->MakeDir(path);
  }
  absl::Status RemoveDir(const std::string& path) override {
    return base_->RemoveDir(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) override {
    return base_->ListDir(path);
  }
  absl::Status SyncDir(const std::string& path) override {
    return base_->SyncDir(path);
  }

 private:
  FileOps* const base_;
  FdObserver* const observer_;
};

}  // namespace

std::unique_ptr<FileOps> FileOps::Observed(FileOps* base,
                                           FdObserver* observer) {
  return std::make_unique<ObservedFileOps>(base, observer);
}

}  // namespace diskwire::storage
