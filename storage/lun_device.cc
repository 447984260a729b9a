#include "storage/lun_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "storage/file_ops.h"
#include "storage/lun_layout.h"

namespace diskwire::storage {
namespace {

bool Aligned(uint64_t v, uint32_t a) { return v % a == 0; }

}  // namespace

bool AlignedBytes::Resize(size_t n) {
  if (n > capacity_) {
    void* p = nullptr;
    const size_t cap = std::max(n, 2 * capacity_);
    if (posix_memalign(&p, kLunBlock, cap) != 0) return false;
    free(data_);
    data_ = static_cast<char*>(p);
    capacity_ = cap;
  }
  size_ = n;
  return true;
}

bool LooksLikeLun(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if (S_ISBLK(st.st_mode)) return true;
  if (!S_ISREG(st.st_mode)) return false;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  char magic[sizeof(kLunMagic)];
  const ssize_t n = pread(fd, magic, sizeof(magic), 0);
  close(fd);
  return n == sizeof(magic) && HasLunMagic(absl::string_view(magic, n));
}

absl::StatusOr<std::unique_ptr<LunDevice>> LunDevice::Open(
    const std::string& path, bool writable) {
  int fd =
      open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
  if (fd < 0 && errno == EINVAL) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": O_DIRECT refused (an image file must sit on a "
                     "filesystem that supports direct I/O, not tmpfs)"));
  }
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, absl::StrCat("stat ", path));
  }
  uint64_t size = 0;
  uint32_t align = kLunBlock;
  const bool block = S_ISBLK(st.st_mode);
  if (block) {
    int lbs = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0 ||
        ioctl(fd, BLKSSZGET, &lbs) != 0) {
      const int err = errno;
      close(fd);
      return ErrnoError(err, absl::StrCat("size of ", path));
    }
    align = static_cast<uint32_t>(lbs);
  } else if (S_ISREG(st.st_mode)) {
    // A filesystem's direct-I/O alignment is at most its block size, which
    // is at most 4 KiB on the filesystems image files live on.
    size = static_cast<uint64_t>(st.st_size);
  } else {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": neither a block device nor a regular file"));
  }
  if (align < 512 || kLunBlock % align != 0) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": logical block size ", align,
                     " does not divide diskwire's 4096-byte block"));
  }
  return std::unique_ptr<LunDevice>(
      new LunDevice(path, fd, size, align, block));
}

LunDevice::~LunDevice() { close(fd_); }

absl::StatusOr<std::string> LunDevice::Read(uint64_t offset,
                                            size_t length) const {
  if (!Aligned(offset, align_) || !Aligned(length, align_)) {
    return absl::InternalError(
        absl::StrCat(path_, ": unaligned read ", length, " at ", offset));
  }
  if (offset + length > size_) {
    return absl::OutOfRangeError(absl::StrCat(
        path_, ": read at ", offset, " past the end (", size_, " bytes)"));
  }
  // Reused per thread: readers poll a block at a time, often.
  thread_local AlignedBytes buf;
  if (!buf.Resize(length)) return absl::ResourceExhaustedError("out of memory");
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        pread(fd_, buf.data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoError(errno, absl::StrCat("read ", path_, " at ", offset));
    }
    if (n == 0) {
      return absl::OutOfRangeError(
          absl::StrCat(path_, ": end of device at ", offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return std::string(buf.data(), length);
}

absl::Status LunDevice::Write(uint64_t offset, absl::string_view data) const {
  if (!Aligned(offset, align_) || !Aligned(data.size(), align_)) {
    return absl::InternalError(
        absl::StrCat(path_, ": unaligned write ", data.size(), " at ", offset));
  }
  if (offset + data.size() > size_) {
    return absl::OutOfRangeError(absl::StrCat(
        path_, ": write at ", offset, " past the end (", size_, " bytes)"));
  }
  const char* from = data.data();
  AlignedBytes copy;
  if (reinterpret_cast<uintptr_t>(from) % align_ != 0) {
    if (!copy.Resize(data.size())) {
      return absl::ResourceExhaustedError("out of memory");
    }
    std::memcpy(copy.data(), data.data(), data.size());
    from = copy.data();
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        pwrite(fd_, from + done, data.size() - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoError(errno, absl::StrCat("write ", path_, " at ", offset));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status LunDevice::Sync() const {
  if (fdatasync(fd_) != 0) {
    return ErrnoError(errno, absl::StrCat("fdatasync ", path_));
  }
  return absl::OkStatus();
}

absl::Status LunDevice::SetLock(short type, uint64_t offset,
                                uint64_t length) const {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(offset);
  fl.l_len = static_cast<off_t>(length);
  if (fcntl(fd_, F_OFD_SETLK, &fl) == 0) return absl::OkStatus();
  if (type == F_WRLCK && (errno == EAGAIN || errno == EACCES)) {
    return absl::FailedPreconditionError("locked by another process");
  }
  return ErrnoError(errno,
                    absl::StrCat(type == F_WRLCK ? "lock " : "unlock ", path_));
}

}  // namespace diskwire::storage
