// File: storage/lun_volume.h
// The LUN backend of Volume: a block device (a SAN LUN seen by both hosts)
// or an image file laid out by `diskwire format` (FormatLun). Every read and
// write is O_DIRECT: each host has its own page cache in front of a shared
// LUN. Layout in lun_layout.h and docs/FORMAT.md.

#ifndef DISKWIRE_STORAGE_LUN_VOLUME_H_
#define DISKWIRE_STORAGE_LUN_VOLUME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/lun_layout.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct LunVolumeOptions {
  std::string node;  // empty: gethostname()
  // Empty, or kMacKeySize bytes; must agree with how the volume was
  // formatted (keyed or not).
  std::string mac_key;
  absl::Duration lease = absl::Seconds(30);
  // LunStoreOptions::slot_id: a stable id for a process that restarts (a
  // mirror) and must find its channels again.
  std::string slot_id;
};

// Opens a formatted device. FailedPrecondition naming the device when it is
// not formatted (or holds another signature), was formatted by a newer
// version, or its keying disagrees with `mac_key`; DataLoss for a superblock
// with a bad checksum.
absl::StatusOr<std::unique_ptr<Volume>> OpenLunVolume(
    const std::string& device, const LunVolumeOptions& options);

// The superblock of `device`, read O_DIRECT; errors as OpenLunVolume.
absl::StatusOr<LunGeometry> ReadLunGeometry(const std::string& device);

// What a LUN volume holds now, for `diskwire check`.
struct LunUsage {
  LunGeometry geometry;
  uint32_t align = 0;           // the device's logical block size
  uint64_t device_bytes = 0;    // the device's size now
  uint32_t live_slots = 0;      // claimed and renewed within the lease
  uint32_t held_slots = 0;      // released or expired, still holding data
  uint64_t extents_in_use = 0;  // over all slots
};
absl::StatusOr<LunUsage> ReadLunUsage(const std::string& device);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_VOLUME_H_
