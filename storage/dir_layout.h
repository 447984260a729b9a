// File: storage/dir_layout.h
// Names and paths of the directory backend (docs/FORMAT.md, "Volume layout"),
// and the record scanner shared by channel writers (recovery) and readers.

#ifndef DISKWIRE_STORAGE_DIR_LAYOUT_H_
#define DISKWIRE_STORAGE_DIR_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/record_codec.h"

namespace diskwire::storage {

inline constexpr char kVolumeMarker[] = "VOLUME";
inline constexpr char kVolumeMarkerText[] = "diskwire volume\nformat 1\n";
inline constexpr char kChannelsDir[] = "channels";
inline constexpr char kHeartbeatsDir[] = "heartbeats";
inline constexpr char kInboxDir[] = "inbox";
inline constexpr char kLockFile[] = "LOCK";
inline constexpr char kHeartbeatSuffix[] = ".hb";

// [a-z0-9._-]{1,128}, not starting with '.'. InvalidArgument naming `what`.
absl::Status ValidateChannelName(absl::string_view name,
                                 absl::string_view what = "channel name");
// Like channel names, upper case allowed too.
absl::Status ValidateProcessId(absl::string_view id);

// "<16 lower-case hex digits>.seg"
std::string SegmentFileName(uint64_t index);
std::optional<uint64_t> ParseSegmentFileName(absl::string_view name);

// Segment indexes present in a channel directory listing, ascending; other
// names (except LOCK and dot-files) go to `*foreign`.
std::vector<uint64_t> SegmentIndexes(const std::vector<std::string>& names,
                                     std::vector<std::string>* foreign);

// Result of decoding consecutive records from a byte range.
struct ScanResult {
  size_t committed_end = 0;  // bytes [0, committed_end) are whole batches
  size_t committed_records = 0;
  size_t scanned_end = 0;  // where decoding stopped
  // Why decoding stopped at scanned_end (< data size): kIncomplete for a
  // record prefix or an all-zero tail, kInvalid (see error) otherwise;
  // kRecord when it stopped at the end of the data or at `stop_after`.
  DecodeResult::Kind stop = DecodeResult::kRecord;
  // kInvalid was a checksum failure of a record ending exactly at the data end.
  bool invalid_is_last = false;
  absl::Status error;
};

// Decodes records from `data` into `*records` (cleared; payloads point into
// `data`) until the data ends, a record does not decode, or a committed
// batch ends at or past `stop_after` bytes.
ScanResult ScanRecords(absl::string_view data, absl::string_view mac_key,
                       size_t stop_after, std::vector<DecodedRecord>* records);

// Bytes of a record with `length` bytes of payload end at stream offset...
inline uint64_t RecordEnd(const RecordHeader& h, size_t payload_size) {
  return h.stream_offset + payload_size;
}

// Does a reader opened at stream offset `from` deliver `r`? Records whose
// bytes end after it, and zero-length ones at or after it (ChannelReader).
inline bool DeliveredFrom(const DecodedRecord& r, uint64_t from) {
  return RecordEnd(r.header, r.payload.size()) > from ||
         (r.payload.empty() && r.header.stream_offset >= from);
}

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_LAYOUT_H_
