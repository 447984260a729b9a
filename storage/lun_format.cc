#include "storage/lun_format.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/file_ops.h"
#include "storage/lun_device.h"
#include "storage/lun_store.h"

namespace diskwire::storage {
namespace {

struct ProbeDeleter {
  void operator()(blkid_probe p) const { blkid_free_probe(p); }
};

}  // namespace

absl::StatusOr<std::string> ProbeSignature(const std::string& device) {
  // libblkid does not know ours.
  {
    const int fd = open(device.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", device));
    char magic[sizeof(kLunMagic)] = {};
    const ssize_t n = pread(fd, magic, sizeof(magic), 0);
    close(fd);
    if (n == sizeof(magic) && HasLunMagic(absl::string_view(magic, n))) {
      return std::string("a diskwire volume");
    }
  }
  std::unique_ptr<blkid_struct_probe, ProbeDeleter> probe(
      blkid_new_probe_from_filename(device.c_str()));
  if (probe == nullptr) {
    return ErrnoError(errno ? errno : EIO, absl::StrCat("probe ", device));
  }
  blkid_probe_enable_superblocks(probe.get(), 1);
  blkid_probe_set_superblocks_flags(probe.get(),
                                    BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
  blkid_probe_enable_partitions(probe.get(), 1);
  blkid_probe_set_partitions_flags(probe.get(), BLKID_PARTS_MAGIC);
  const int rc = blkid_do_safeprobe(probe.get());
  if (rc == 1) return std::string();
  if (rc == -2) {
    return std::string("several signatures (ambiguous probe)");
  }
  if (rc < 0) return absl::UnavailableError(absl::StrCat("probe ", device));
  const char* value = nullptr;
  if (blkid_probe_lookup_value(probe.get(), "TYPE", &value, nullptr) == 0) {
    const char* usage = nullptr;
    blkid_probe_lookup_value(probe.get(), "USAGE", &usage, nullptr);
    return absl::StrCat("a ", value, " ", usage ? usage : "signature");
  }
  if (blkid_probe_lookup_value(probe.get(), "PTTYPE", &value, nullptr) == 0) {
    return absl::StrCat("a ", value, " partition table");
  }
  return std::string("an unknown signature");
}

absl::StatusOr<LunGeometry> FormatLun(const std::string& device,
                                      const LunFormatRequest& request,
                                      bool force) {
  DW_ASSIGN_OR_RETURN(std::string found, ProbeSignature(device));
  if (!found.empty() && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat(device, " holds ", found,
                     "; diskwire format would destroy it (--force to do so)"));
  }
  DW_ASSIGN_OR_RETURN(std::unique_ptr<LunDevice> dev,
                      LunDevice::Open(device, /*writable=*/true));
  DW_ASSIGN_OR_RETURN(LunGeometry g, PlanLun(dev->size(), request));
  g.device_bytes = dev->size() / kLunBlock * kLunBlock;
  g.created_ns = LunNowNs();
  g.volume_id.resize(16);
  if (getrandom(g.volume_id.data(), 16, 0) != 16) {
    return ErrnoError(errno, "getrandom");
  }
  // The old superblock goes first and the new one comes last: a format cut
  // short leaves no volume at all rather than a half-made one.
  DW_RETURN_IF_ERROR(dev->Write(0, std::string(kLunBlock, '\0')));
  // Slots zeroed: no claim, heartbeat, message or extent survives. Extents
  // need not be: a frame counts only with its extent's current generation.
  const std::string zeros(1 << 20, '\0');
  for (uint64_t at = kLunBlock; at < g.data_offset();) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), g.data_offset() - at);
    DW_RETURN_IF_ERROR(dev->Write(at, absl::string_view(zeros).substr(0, n)));
    at += n;
  }
  // Other signatures (a filesystem's backup superblock, a GPT's backup at
  // the end) must not outlive us either.
  if (force) {
    const int fd = open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", device));
    std::unique_ptr<blkid_struct_probe, ProbeDeleter> probe(blkid_new_probe());
    if (probe != nullptr &&
        blkid_probe_set_device(probe.get(), fd, 0, 0) == 0) {
      blkid_probe_enable_superblocks(probe.get(), 1);
      blkid_probe_enable_partitions(probe.get(), 1);
      blkid_probe_set_partitions_flags(probe.get(), BLKID_PARTS_MAGIC);
      while (blkid_do_probe(probe.get()) == 0) {
        if (blkid_do_wipe(probe.get(), 0) != 0) break;
      }
    }
    probe.reset();
    fsync(fd);
    close(fd);
  }
  DW_RETURN_IF_ERROR(dev->Sync());
  DW_RETURN_IF_ERROR(dev->Write(0, EncodeSuperblock(g)));
  DW_RETURN_IF_ERROR(dev->Sync());
  return g;
}

}  // namespace diskwire::storage
