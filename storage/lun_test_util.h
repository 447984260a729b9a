// File: storage/lun_test_util.h
// Test helper (testonly): an image file laid out by FormatLun, a LUN that
// needs no block device.

#ifndef DISKWIRE_STORAGE_LUN_TEST_UTIL_H_
#define DISKWIRE_STORAGE_LUN_TEST_UTIL_H_

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/lun_format.h"

namespace diskwire::storage {

// A sparse file of `bytes` at `path` (replacing what was there).
inline absl::Status MakeImageFile(const std::string& path, uint64_t bytes) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return absl::ErrnoToStatus(errno, "creating " + path);
  const int sized = ftruncate(fd, static_cast<off_t>(bytes));
  const int error = errno;
  close(fd);
  if (sized != 0) return absl::ErrnoToStatus(error, "sizing " + path);
  return absl::OkStatus();
}

// The same, formatted as a diskwire LUN.
inline absl::StatusOr<LunGeometry> MakeLunImage(
    const std::string& path, uint64_t bytes, const LunFormatRequest& request) {
  absl::Status made = MakeImageFile(path, bytes);
  if (!made.ok()) return made;
  return FormatLun(path, request, /*force=*/false);
}

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_TEST_UTIL_H_
