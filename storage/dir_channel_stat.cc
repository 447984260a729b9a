// StatDirChannel (dir_channel.h): what `diskwire mirror` needs to know of a
// directory channel besides its records.

#include <fcntl.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_channel.h"
#include "storage/dir_layout.h"

namespace diskwire::storage {
namespace {

// The first stream offset in the header of segment file `path`.
absl::StatusOr<uint64_t> FirstStreamOffset(FileOps& ops,
                                           const std::string& path) {
  DW_ASSIGN_OR_RETURN(int fd, ops.Open(path, O_RDONLY, 0));
  char header[kSegmentHeaderSize];
  absl::StatusOr<size_t> n = ops.PRead(fd, header, sizeof(header), 0);
  ops.Close(fd).IgnoreError();
  DW_RETURN_IF_ERROR(n.status());
  if (*n != sizeof(header)) {
    return absl::DataLossError(absl::StrCat(path, ": short segment header"));
  }
  uint64_t index = 0, first = 0;
  DW_RETURN_IF_ERROR(
      DecodeSegmentHeader(absl::string_view(header, *n), &index, &first));
  return first;
}

}  // namespace

absl::StatusOr<ChannelStat> StatDirChannel(const DirContext& ctx,
                                           const std::string& channel) {
  const std::string dir = ctx.ChannelDir(channel);
  // The inode alone can be reused by a directory created right after the old
  // one was removed; the birth time (where the filesystem has one) is not.
  struct statx stx;
  if (statx(AT_FDCWD, dir.c_str(), AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME,
            &stx) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("no channel ", channel));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("statx ", dir));
  }
  ChannelStat out;
  out.identity = stx.stx_ino * 0x9E3779B97F4A7C15ull;
  if (stx.stx_mask & STATX_BTIME) {
    out.identity ^=
        static_cast<uint64_t>(stx.stx_btime.tv_sec) * 1'000'000'000u +
        stx.stx_btime.tv_nsec;
  }
  if (out.identity == 0) out.identity = 1;
  DW_ASSIGN_OR_RETURN(std::vector<std::string> files, ctx.ops->ListDir(dir));
  std::vector<std::string> foreign;
  const std::vector<uint64_t> segments = SegmentIndexes(files, &foreign);
  if (segments.empty() || segments.front() == 1) return out;
  DW_ASSIGN_OR_RETURN(
      out.trimmed_below,
      FirstStreamOffset(*ctx.ops,
                        dir + "/" + SegmentFileName(segments.front())));
  return out;
}

}  // namespace diskwire::storage
