// File: storage/dir_channel.h
// Channel writer and reader of the directory backend (internal to
// dir_volume; core/ uses the Volume interface).

#ifndef DISKWIRE_STORAGE_DIR_CHANNEL_H_
#define DISKWIRE_STORAGE_DIR_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/file_ops.h"
#include "storage/volume.h"

namespace diskwire::storage {

// What the directory backend's parts share. `ops` outlives them all.
struct DirContext {
  std::string root;  // volume directory, no trailing '/'
  FileOps* ops;      // never null
  // Keeps `ops` alive in every copy when the volume made them (confined to
  // `root`).
  std::shared_ptr<FileOps> owned_ops;
  // And the FileOps::Observed() around them, when the volume's fds are
  // observed (DirVolumeOptions::fd_observer): `ops` is then this one.
  std::shared_ptr<FileOps> observed_ops;
  std::string mac_key;  // empty, or kMacKeySize bytes
  std::string node;     // this host's name on the volume
  // A network or FUSE filesystem (IsNetworkFilesystem): readers revalidate
  // cached file sizes at end of file.
  bool network_fs = false;

  std::string ChannelDir(const std::string& channel) const {
    return root + "/channels/" + channel;
  }
};

// REQUIRES: `channel` is a valid name.
absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenDirChannelWriter(
    const DirContext& ctx, const std::string& channel,
    const WriterOptions& options);
std::unique_ptr<ChannelReader> NewDirChannelReader(const DirContext& ctx,
                                                   const std::string& channel,
                                                   uint64_t from_stream_offset);

// Identity: the channel directory's inode and birth time. Trimmed: the first
// stream offset of the oldest segment, when that is not segment 1.
absl::StatusOr<ChannelStat> StatDirChannel(const DirContext& ctx,
                                           const std::string& channel);

// Upper limit of one Append batch (readers buffer a whole batch).
inline constexpr size_t kMaxBatchBytes = 64u << 20;

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_CHANNEL_H_
