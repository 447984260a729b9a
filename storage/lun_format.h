// File: storage/lun_format.h
// `diskwire format`: lays a LUN volume (lun_layout.h) on a block device or an
// image file, after making sure nothing else lives there.

#ifndef DISKWIRE_STORAGE_LUN_FORMAT_H_
#define DISKWIRE_STORAGE_LUN_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "storage/lun_layout.h"

namespace diskwire::storage {

// What libblkid recognises on `device` ("ext4 filesystem", "dos partition
// table", "diskwire volume"...), empty when nothing. An error when the device
// cannot be probed.
absl::StatusOr<std::string> ProbeSignature(const std::string& device);

// Formats `device`: refuses (FailedPrecondition naming the device and what it
// holds) a device with a signature unless `force`; InvalidArgument when the
// request does not fit. Writes the superblock last, so that a format cut
// short leaves no volume that looks whole.
absl::StatusOr<LunGeometry> FormatLun(const std::string& device,
                                      const LunFormatRequest& request,
                                      bool force);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_FORMAT_H_
