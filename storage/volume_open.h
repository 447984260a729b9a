// File: storage/volume_open.h
// Opens a volume with the backend its path calls for: a block device, or a
// file that `diskwire format` laid out, is a LUN volume (lun_volume.h);
// anything else is a directory volume (dir_volume.h).

#ifndef DISKWIRE_STORAGE_VOLUME_OPEN_H_
#define DISKWIRE_STORAGE_VOLUME_OPEN_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/dir_volume.h"
#include "storage/volume.h"

namespace diskwire::storage {

// `options.file_ops` applies to a directory volume only, `lun_slot_id` to a
// LUN only (LunVolumeOptions::slot_id).
absl::StatusOr<std::unique_ptr<Volume>> OpenVolume(
    const std::string& path, const DirVolumeOptions& options,
    const std::string& lun_slot_id = "");

// CheckDirVolume, or for a LUN: is it formatted by a version this reads?
absl::Status CheckVolume(const std::string& path);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_VOLUME_OPEN_H_
