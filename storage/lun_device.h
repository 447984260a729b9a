// File: storage/lun_device.h
// A block device or image file opened O_DIRECT: every read and write bypasses
// this host's page cache, which on a shared LUN holds blocks another host may
// have rewritten since, and is aligned to the device's logical block size.

#ifndef DISKWIRE_STORAGE_LUN_DEVICE_H_
#define DISKWIRE_STORAGE_LUN_DEVICE_H_

#include <fcntl.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace diskwire::storage {

// True when `path` is a block device, or a regular file that starts with a
// diskwire LUN superblock (so that it is not a directory volume).
bool LooksLikeLun(const std::string& path);

// A buffer whose start suits O_DIRECT (4096-aligned): a LunDevice writes it
// without copying. Contents are not kept across a Resize that grows it.
class AlignedBytes {
 public:
  AlignedBytes() = default;
  ~AlignedBytes() { free(data_); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  // False when out of memory.
  bool Resize(size_t n);
  char* data() { return data_; }
  size_t size() const { return size_; }
  absl::string_view view() const { return absl::string_view(data_, size_); }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

class LunDevice {
 public:
  // Opens `path` read-write (or read-only) with O_DIRECT. InvalidArgument
  // naming the device when it is neither a block device nor a regular file,
  // or when O_DIRECT is refused (tmpfs: "not on a filesystem that supports
  // O_DIRECT").
  static absl::StatusOr<std::unique_ptr<LunDevice>> Open(
      const std::string& path, bool writable);
  ~LunDevice();
  LunDevice(const LunDevice&) = delete;
  LunDevice& operator=(const LunDevice&) = delete;

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  // The device's logical block size (BLKSSZGET), or the filesystem's direct
  // I/O alignment for an image file (statx STATX_DIOALIGN; 4096 when
  // unknown). Every offset and length below is a multiple of it.
  uint32_t align() const { return align_; }
  bool is_block_device() const { return block_device_; }
  int fd() const { return fd_; }

  // Reads [offset, offset + length). Unavailable on EIO, OutOfRange past the
  // end. REQUIRES: aligned.
  absl::StatusOr<std::string> Read(uint64_t offset, size_t length) const;
  // Writes `data` at `offset`, all of it; without a copy when `data` starts
  // aligned (AlignedBytes). REQUIRES: offset and length aligned.
  absl::Status Write(uint64_t offset, absl::string_view data) const;
  // fdatasync: through the device's volatile write cache.
  absl::Status Sync() const;
  // Non-blocking OFD write lock on [offset, offset + length) of this host's
  // device node: FailedPrecondition when another process of this host holds
  // it. Across hosts it means nothing (each has its own node); claims check
  // themselves there (lun_volume.cc).
  absl::Status LockRange(uint64_t offset, uint64_t length) const {
    return SetLock(F_WRLCK, offset, length);
  }
  absl::Status UnlockRange(uint64_t offset, uint64_t length) const {
    return SetLock(F_UNLCK, offset, length);
  }

 private:
  absl::Status SetLock(short type, uint64_t offset, uint64_t length) const;
  LunDevice(std::string path, int fd, uint64_t size, uint32_t align,
            bool block_device)
      : path_(std::move(path)),
        fd_(fd),
        size_(size),
        align_(align),
        block_device_(block_device) {}

  const std::string path_;
  const int fd_;
  const uint64_t size_;
  const uint32_t align_;
  const bool block_device_;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_DEVICE_H_
