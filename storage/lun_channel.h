// File: storage/lun_channel.h
// Channel writer and reader of the LUN backend (internal to lun_volume). A
// channel is a chain of extents of its writer's slot, one per segment; each
// append is one frame (header, records, zero padding to the device's block)
// written O_DIRECT at the extent's end. A seal frame closes an extent before
// the next segment is allocated, so a reader learns of the rotation from the
// data it reads rather than by re-reading the map.

#ifndef DISKWIRE_STORAGE_LUN_CHANNEL_H_
#define DISKWIRE_STORAGE_LUN_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/channel.h"
#include "storage/lun_store.h"

namespace diskwire::storage {

absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenLunChannelWriter(
    LunStore* store, const std::string& channel, const WriterOptions& options);
std::unique_ptr<ChannelReader> NewLunChannelReader(LunStore* store,
                                                   const std::string& channel,
                                                   uint64_t from_stream_offset);

inline uint64_t RoundUpTo(uint64_t n, uint64_t a) {
  return (n + a - 1) / a * a;
}

// Frames parsed from the start of an extent's bytes: where valid data ends,
// whether a seal closes it, the last record and the highest stream end.
struct LunExtentScan {
  uint64_t end = 0;  // offset past the last whole frame
  bool sealed = false;
  std::optional<RecordHeader> last;
  uint64_t last_end = 0;  // stream end of `last`
  uint64_t max_end = 0;   // highest stream end of any record
  std::string note;       // why the scan stopped before a seal, if torn
};
LunExtentScan ScanLunExtent(absl::string_view bytes, uint64_t generation,
                            uint32_t align, absl::string_view mac_key);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_CHANNEL_H_
