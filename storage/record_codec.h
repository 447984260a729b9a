// File: storage/record_codec.h
// Encoding and decoding of single records (layout in record_format.h and
// docs/FORMAT.md). Pure functions: no I/O, thread-compatible.

#ifndef DISKWIRE_STORAGE_RECORD_CODEC_H_
#define DISKWIRE_STORAGE_RECORD_CODEC_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "storage/record.h"

namespace diskwire::storage {

// Bytes one encoded record occupies.
inline size_t EncodedRecordSize(size_t payload_size, bool with_mac) {
  return kRecordHeaderSize + payload_size + (with_mac ? kMacSize : 0);
}

// Writes the 64-byte header of `header` + `payload` to `header_out` and, when
// `mac_key` is not empty (it must then be kMacKeySize bytes), the MAC to
// `mac_out` (kMacSize bytes). The payload itself is not copied, so a writer can
// hand header, payload and MAC to one writev(). `commit` marks the last record
// of an appended batch. REQUIRES: payload.size() <= kMaxPayloadSize.
void EncodeRecord(const RecordHeader& header, absl::string_view payload,
                  bool commit, absl::string_view mac_key, char* header_out,
                  char* mac_out);

// Appends the complete encoding (header, payload, MAC) to `*out`.
void AppendEncodedRecord(const RecordHeader& header, absl::string_view payload,
                         bool commit, absl::string_view mac_key,
                         std::string* out);

// A decoded record whose payload points into the decoder's input.
struct DecodedRecord {
  RecordHeader header;
  absl::string_view payload;
  bool commit = false;  // kFlagCommit was set
  size_t size = 0;      // bytes the record occupies in the input
};

struct DecodeResult {
  enum Kind {
    kRecord,      // *out holds a valid record of `size` bytes
    kIncomplete,  // a valid prefix of a record: more bytes are needed
    kInvalid,     // `error` says why (never delivered)
  };
  Kind kind = kInvalid;
  // kInvalid because a complete, well-formed record failed its checksum (as
  // opposed to a bad magic, field or length).
  bool bad_checksum = false;
  // kInvalid: DataLoss (bad magic/checksum/length/fields), FailedPrecondition
  // (unsupported version; authenticated record but no key), or
  // Unauthenticated (missing or wrong MAC while a key is configured).
  absl::Status error;
};

// Decodes the record at the start of `data`. With a non-empty `mac_key`
// every record must carry a valid MAC. Never reads outside `data`, never
// crashes on any input.
DecodeResult DecodeRecord(absl::string_view data, absl::string_view mac_key,
                          DecodedRecord* out);

// Segment file header (record_format.h).
void EncodeSegmentHeader(uint64_t index, uint64_t first_stream_offset,
                         char* out);
// Fails with DataLoss (bad magic/checksum) or FailedPrecondition (version).
absl::Status DecodeSegmentHeader(absl::string_view data, uint64_t* index,
                                 uint64_t* first_stream_offset);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_RECORD_CODEC_H_
