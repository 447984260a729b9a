#include "storage/volume_open.h"

#include "storage/lun_device.h"
#include "storage/lun_volume.h"

namespace diskwire::storage {

absl::StatusOr<std::unique_ptr<Volume>> OpenVolume(
    const std::string& path, const DirVolumeOptions& options,
    const std::string& lun_slot_id) {
  if (!LooksLikeLun(path)) return OpenDirVolume(path, options);
  LunVolumeOptions lun;
  lun.node = options.node;
  lun.mac_key = options.mac_key;
  lun.slot_id = lun_slot_id;
  return OpenLunVolume(path, lun);
}

absl::Status CheckVolume(const std::string& path) {
  if (!LooksLikeLun(path)) return CheckDirVolume(path);
  return ReadLunGeometry(path).status();
}

}  // namespace diskwire::storage
