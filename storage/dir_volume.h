// File: storage/dir_volume.h
// The directory backend of Volume: a directory on any POSIX filesystem (local
// disk, tmpfs, NFS, CephFS, GlusterFS...). Layout in docs/FORMAT.md.

#ifndef DISKWIRE_STORAGE_DIR_VOLUME_H_
#define DISKWIRE_STORAGE_DIR_VOLUME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/file_ops.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct DirVolumeOptions {
  // This host's name, recorded in heartbeats. Empty: gethostname().
  std::string node;
  // Empty (records carry no MAC and a MAC is refused), or kMacKeySize bytes:
  // every record written carries a keyed BLAKE2b MAC and every record read
  // must carry a valid one.
  std::string mac_key;
  // Filesystem calls; nullptr for FileOps::Confined() to the volume (no link
  // inside it is followed). Must outlive the volume.
  FileOps* file_ops = nullptr;
  // Told of every fd the volume holds open (its channels' locks, segments and
  // readers); nullptr for none. Must outlive the volume.
  FdObserver* fd_observer = nullptr;
};

// Opens the volume at `root`, creating the directory and its marker file when
// missing or empty. FailedPrecondition for a non-empty directory that is not a
// diskwire volume, or a volume of another format version; InvalidArgument for
// a key of the wrong size.
absl::StatusOr<std::unique_ptr<Volume>> OpenDirVolume(
    const std::string& root, const DirVolumeOptions& options);

// Reads a MAC key file: exactly kMacKeySize raw bytes, or 2*kMacKeySize hex
// digits (a trailing newline allowed). InvalidArgument naming the file
// otherwise.
// Would OpenDirVolume(root) succeed, as far as reading can tell? OK for a
// volume of this format, and for an empty directory (it becomes one on first
// use); FailedPrecondition naming what is wrong otherwise. Writes nothing.
absl::Status CheckDirVolume(const std::string& root);

absl::StatusOr<std::string> LoadMacKeyFile(const std::string& path,
                                           FileOps* ops = nullptr);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_VOLUME_H_
