// File: storage/record.h
// A record as C++ sees it: the decoded header fields plus the payload. The
// on-volume encoding is in record_format.h / record_codec.h.

#ifndef DISKWIRE_STORAGE_RECORD_H_
#define DISKWIRE_STORAGE_RECORD_H_

#include <cstdint>
#include <string>

#include "storage/record_format.h"

namespace diskwire::storage {

// 128-bit session id; core derives it with XXH3-128 (high64, low64).
struct SessionId {
  uint64_t high = 0;
  uint64_t low = 0;
  friend bool operator==(const SessionId&, const SessionId&) = default;
};

// Direction of the byte stream a record belongs to.
inline constexpr uint8_t kClientToServer = 0;
inline constexpr uint8_t kServerToClient = 1;

struct RecordHeader {
  RecordType type = RecordType::kData;
  // Caller-visible flags are reserved: the codec sets kFlagMac and
  // kFlagCommit itself. Keep 0.
  uint8_t flags = 0;
  SessionId session_id;
  uint8_t direction = kClientToServer;
  uint64_t stream_offset = 0;  // stream offset of the payload's first byte
  uint64_t ack_offset = 0;     // reverse-direction bytes delivered
  // CLOCK_REALTIME ns. A writer fills 0 with the time of the append.
  uint64_t timestamp_ns = 0;
  friend bool operator==(const RecordHeader&, const RecordHeader&) = default;
};

struct Record {
  RecordHeader header;
  std::string payload;
  friend bool operator==(const Record&, const Record&) = default;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_RECORD_H_
