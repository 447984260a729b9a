// File: storage/record_format.h
// Byte layout of a record in a channel segment (docs/FORMAT.md is the
// normative description). All integers are little-endian.
//
//   record := header[64] payload[payload_length] mac[32 if kFlagMac]
//   header := magic "DWRC"[4] version[1] type[1] flags[1] direction[1]
//             payload_length[4] reserved[4]=0 session_hi[8] session_lo[8]
//             stream_offset[8] ack_offset[8] timestamp_ns[8] checksum[8]
//   checksum := XXH3_64(mac, seed=XXH3_64(payload, seed=XXH3_64(header[0:56])))
//               (the mac step only when kFlagMac is set)
//   mac := keyed BLAKE2b-256 (crypto_generichash) over header[0:56] ‖ payload

#ifndef DISKWIRE_STORAGE_RECORD_FORMAT_H_
#define DISKWIRE_STORAGE_RECORD_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace diskwire::storage {

inline constexpr char kRecordMagic[4] = {'D', 'W', 'R', 'C'};
inline constexpr uint8_t kFormatVersion = 1;
inline constexpr size_t kRecordHeaderSize = 64;
inline constexpr size_t kChecksumOffset = 56;
inline constexpr size_t kMacSize = 32;     // crypto_generichash_BYTES
inline constexpr size_t kMacKeySize = 32;  // crypto_generichash_KEYBYTES
// Larger lengths are rejected as corrupt without reading further.
inline constexpr uint32_t kMaxPayloadSize = 16u << 20;

// Record types. Zero is reserved: zero-filled (preallocated or torn) space is
// never a valid record.
enum class RecordType : uint8_t {
  kData = 1,       // stream bytes at [stream_offset, stream_offset + length)
  kAck = 2,        // only ack_offset is meaningful
  kHello = 3,      // session announcement
  kFin = 4,        // orderly end of this direction at stream_offset
  kRst = 5,        // abortive close
  kHeartbeat = 6,  // process liveness (heartbeat files)
  kFailover = 7,   // failover announcement (F in stream_offset)
  kInbox = 8,      // inbox message file
};
inline constexpr uint8_t kMaxRecordType = 8;

// Header flag bits; all other bits must be zero.
inline constexpr uint8_t kFlagMac = 0x01;  // a 32-byte MAC follows the payload
inline constexpr uint8_t kFlagCommit =
    0x02;  // last record of an appended batch
inline constexpr uint8_t kKnownFlags = kFlagMac | kFlagCommit;

// Segment file header (32 bytes), at offset 0 of every segment file:
//   magic "DWSG"[4] version[2] flags[2]=0 segment_index[8]
//   first_stream_offset[8] checksum[8] = XXH3_64(bytes 0..24)
inline constexpr char kSegmentMagic[4] = {'D', 'W', 'S', 'G'};
inline constexpr size_t kSegmentHeaderSize = 32;

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_RECORD_FORMAT_H_
