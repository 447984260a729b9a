// File: storage/forwarding_file_ops.h
// A FileOps that hands every call to another: the base of those that change
// a few calls (confined paths, observed fds) and keep the rest.

#ifndef DISKWIRE_STORAGE_FORWARDING_FILE_OPS_H_
#define DISKWIRE_STORAGE_FORWARDING_FILE_OPS_H_

#include <string>
#include <vector>

#include "storage/file_ops.h"

namespace diskwire::storage {

class ForwardingFileOps : public FileOps {
 public:
  // REQUIRES: `base` outlives this.
  explicit ForwardingFileOps(FileOps* base) : base_(base) {}

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    return base_->Open(path, flags, mode);
  }
  absl::Status Close(int fd) override { return base_->Close(fd); }
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

 protected:
  FileOps* base() const { return base_; }

 private:
  FileOps* const base_;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_FORWARDING_FILE_OPS_H_
