#include "storage/fault_injecting_file_ops.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace diskwire::storage {

void FaultInjectingFileOps::FailNext(FileOp op, int err, int times,
                                     std::string path_part) {
  absl::MutexLock lock(&mu_);
  faults_.push_back({op, err, 0, times, std::move(path_part)});
}

void FaultInjectingFileOps::ShortWriteNext(size_t max_bytes,
                                           std::string path_part) {
  absl::MutexLock lock(&mu_);
  faults_.push_back({FileOp::kWrite, 0, max_bytes, 1, std::move(path_part)});
}

int FaultInjectingFileOps::Calls(FileOp op) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

bool FaultInjectingFileOps::Take(FileOp op, const std::string& path,
                                 Fault* out) {
  absl::MutexLock lock(&mu_);
  ++calls_[op];
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->op != op || !absl::StrContains(path, it->path_part)) continue;
    *out = *it;
    if (--it->times <= 0) faults_.erase(it);
    return true;
  }
  return false;
}

std::string FaultInjectingFileOps::PathOf(int fd) {
  absl::MutexLock lock(&mu_);
  auto it = paths_.find(fd);
  return it == paths_.end() ? std::string() : it->second;
}

#define DW_INJECT_(op, path, what)                                 \
  do {                                                             \
    Fault f;                                                       \
    if (Take(op, path, &f) && f.err != 0) {                        \
      return ErrnoError(f.err, absl::StrCat(what, " (injected)")); \
    }                                                              \
  } while (0)

absl::StatusOr<int> FaultInjectingFileOps::Open(const std::string& path,
                                                int flags, mode_t mode) {
  DW_INJECT_(FileOp::kOpen, path, "open " + path);
  absl::StatusOr<int> fd = base_->Open(path, flags, mode);
  if (fd.ok()) {
    absl::MutexLock lock(&mu_);
    paths_[*fd] = path;
  }
  return fd;
}

absl::Status FaultInjectingFileOps::Close(int fd) {
  {
    absl::MutexLock lock(&mu_);
    paths_.erase(fd);
  }
  return base_->Close(fd);
}

absl::StatusOr<size_t> FaultInjectingFileOps::WriteV(int fd, const iovec* iov,
                                                     int iovcnt) {
  const std::string path = PathOf(fd);
  Fault f;
  if (!Take(FileOp::kWrite, path, &f)) return base_->WriteV(fd, iov, iovcnt);
  if (f.err != 0) return ErrnoError(f.err, "write " + path + " (injected)");
  // Short write: forward a prefix of the iovecs.
  std::vector<iovec> prefix;
  size_t left = f.max_bytes;
  for (int i = 0; i < iovcnt && left > 0; ++i) {
    const size_t n = std::min(left, iov[i].iov_len);
    prefix.push_back({iov[i].iov_base, n});
    left -= n;
  }
  if (prefix.empty()) return 0;
  return base_->WriteV(fd, prefix.data(), static_cast<int>(prefix.size()));
}

absl::StatusOr<size_t> FaultInjectingFileOps::PRead(int fd, char* buf, size_t n,
                                                    uint64_t offset) {
  DW_INJECT_(FileOp::kRead, PathOf(fd), "read " + PathOf(fd));
  return base_->PRead(fd, buf, n, offset);
}

absl::Status FaultInjectingFileOps::Sync(int fd) {
  DW_INJECT_(FileOp::kSync, PathOf(fd), "fdatasync " + PathOf(fd));
  return base_->Sync(fd);
}

absl::Status FaultInjectingFileOps::Truncate(int fd, uint64_t size) {
  DW_INJECT_(FileOp::kTruncate, PathOf(fd), "ftruncate " + PathOf(fd));
  return base_->Truncate(fd, size);
}

absl::Status FaultInjectingFileOps::Lock(int fd) {
  DW_INJECT_(FileOp::kLock, PathOf(fd), "lock " + PathOf(fd));
  return base_->Lock(fd);
}

absl::Status FaultInjectingFileOps::Rename(const std::string& from,
                                           const std::string& to) {
  DW_INJECT_(FileOp::kRename, to, "rename " + to);
  return base_->Rename(from, to);
}

absl::Status FaultInjectingFileOps::Link(const std::string& from,
                                         const std::string& to) {
  DW_INJECT_(FileOp::kLink, to, "link " + to);
  return base_->Link(from, to);
}

absl::Status FaultInjectingFileOps::Unlink(const std::string& path) {
  DW_INJECT_(FileOp::kUnlink, path, "unlink " + path);
  return base_->Unlink(path);
}

absl::Status FaultInjectingFileOps::MakeDir(const std::string& path) {
  DW_INJECT_(FileOp::kMakeDir, path, "mkdir " + path);
  return base_->MakeDir(path);
}

absl::StatusOr<std::vector<std::string>> FaultInjectingFileOps::ListDir(
    const std::string& path) {
  DW_INJECT_(FileOp::kListDir, path, "list " + path);
  return base_->ListDir(path);
}

absl::Status FaultInjectingFileOps::SyncDir(const std::string& path) {
  DW_INJECT_(FileOp::kSync, path, "fsync " + path);
  return base_->SyncDir(path);
}

}  // namespace diskwire::storage
