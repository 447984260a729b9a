// File: storage/lun_layout.h
// Byte layout of a diskwire volume on a block device or image file (a "LUN";
// docs/FORMAT.md is the normative description). All integers little-endian.
//
//   [superblock 4 KiB][slot 0]...[slot S-1][extents of slot 0]...[of S-1]
//   slot := claim[4 KiB] heartbeat[2][hb] taken[4 KiB] outbox[cells][4 KiB]
//           extent_map[extents_per_slot][256 B] (rounded up to 4 KiB)
//
// Every region has exactly one writer: a slot (and its extents) belongs to
// the process that claimed it, so two hosts never share an allocator. The
// only block another host writes in a slot is none: a receiver records what it
// took from a sender's outbox in its own slot's taken table.

#ifndef DISKWIRE_STORAGE_LUN_LAYOUT_H_
#define DISKWIRE_STORAGE_LUN_LAYOUT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace diskwire::storage {

inline constexpr char kLunMagic[8] = {'D', 'W', 'L', 'U', 'N', 'V', 'O', 'L'};
inline constexpr uint32_t kLunVersion = 1;
// Regions are aligned to this; I/O is aligned to the device's logical block
// size, which must divide it.
inline constexpr uint64_t kLunBlock = 4096;
inline constexpr uint32_t kLunMaxSlots = 255;  // the taken table's capacity
inline constexpr uint32_t kLunMinExtent = 128 << 10;
inline constexpr size_t kLunExtentEntrySize = 256;
inline constexpr size_t kLunNameMax = 128;
inline constexpr size_t kLunFrameHeaderSize = 32;
inline constexpr size_t kLunHeartbeatHeaderSize = 320;
inline constexpr size_t kLunCellHeaderSize = 296;
inline constexpr size_t kLunCellPayloadMax = kLunBlock - kLunCellHeaderSize;
inline constexpr uint32_t kLunFlagKeyed = 1;  // records carry a MAC

// What `diskwire format` is asked for; zero fields take defaults that fit the
// device.
struct LunFormatRequest {
  uint32_t slots = 0;            // default 64 (fewer on small devices)
  uint32_t extent_bytes = 0;     // default: about 64 per slot, 128 KiB..1 MiB
  uint32_t heartbeat_bytes = 0;  // default 256 KiB per copy
  uint32_t outbox_cells = 0;     // default 16
  bool keyed = false;
};

struct LunGeometry {
  uint32_t version = kLunVersion;
  uint32_t flags = 0;
  std::string volume_id;  // 16 bytes
  uint64_t device_bytes = 0;
  uint32_t slots = 0;
  uint32_t extent_bytes = 0;
  uint32_t extents_per_slot = 0;
  uint32_t heartbeat_bytes = 0;
  uint32_t outbox_cells = 0;
  uint64_t created_ns = 0;

  uint64_t map_bytes() const;  // one slot's extent map, block-rounded
  uint64_t slot_bytes() const;
  uint64_t slot_offset(uint32_t slot) const;
  uint64_t claim_offset(uint32_t slot) const { return slot_offset(slot); }
  uint64_t heartbeat_offset(uint32_t slot, int copy) const;
  uint64_t taken_offset(uint32_t slot) const;
  uint64_t cell_offset(uint32_t slot, uint32_t cell) const;
  uint64_t map_offset(uint32_t slot) const;
  uint64_t data_offset() const;
  uint64_t extent_offset(uint32_t slot, uint32_t extent) const;
  uint64_t used_bytes() const;
};

// Lays out `device_bytes` as `request` asks. InvalidArgument naming what does
// not fit (too small a device, too many slots, an extent not a multiple of
// 4 KiB...).
absl::StatusOr<LunGeometry> PlanLun(uint64_t device_bytes,
                                    const LunFormatRequest& request);

// The 4 KiB superblock.
std::string EncodeSuperblock(const LunGeometry& g);
// NotFound when `block` holds no diskwire superblock at all (another
// signature or zeros: the caller names the device), DataLoss for a bad
// checksum, FailedPrecondition for a newer version.
absl::StatusOr<LunGeometry> DecodeSuperblock(absl::string_view block);
bool HasLunMagic(absl::string_view block);

// A slot's claim block.
struct LunClaim {
  enum State : uint32_t { kFree = 0, kClaimed = 1, kReleased = 2 };
  State state = kFree;
  uint64_t nonce = 0;  // random per claiming Volume object
  uint64_t claimed_ns = 0;
  uint64_t renewed_ns = 0;  // CLOCK_REALTIME; a lease runs from here
  int64_t pid = 0;
  std::string node;
  std::string process_id;
};
std::string EncodeClaim(const LunClaim& c);  // kLunBlock bytes
// nullopt for a zero, torn or foreign block (the slot counts as free).
std::optional<LunClaim> DecodeClaim(absl::string_view block);
// A block that starts like a claim (or `entry` like an extent entry) but does
// not decode: most likely read while its owner was rewriting it.
bool TornClaim(absl::string_view block);
bool TornExtentEntry(absl::string_view entry);

// One entry of a slot's extent map: extent j of the slot belongs to channel
// `name` as its segment `segment`, records from `first_offset`.
struct LunExtentEntry {
  uint64_t generation = 0;  // random per allocation; 0 = free
  uint64_t segment = 0;     // 1, 2, ... per channel
  uint64_t first_offset = 0;
  std::string name;
  // Random per channel, the same in all its extents: a channel removed and
  // created again under its name is another channel (Volume::StatChannel).
  uint64_t birth = 0;
};
void EncodeExtentEntry(const LunExtentEntry& e, char* out);  // 256 bytes
std::optional<LunExtentEntry> DecodeExtentEntry(absl::string_view entry);

// The header of one appended batch in an extent.
struct LunFrame {
  uint32_t length = 0;  // record bytes after the header
  uint64_t generation = 0;
  uint32_t position = 0;  // offset of the frame in its extent
};
void EncodeFrameHeader(const LunFrame& f, char* out);  // 32 bytes
std::optional<LunFrame> DecodeFrameHeader(absl::string_view header);

// A heartbeat copy: header (kLunHeartbeatHeaderSize) then payload.
struct LunHeartbeat {
  uint64_t sequence = 0;
  uint64_t time_ns = 0;
  int64_t pid = 0;
  uint64_t nonce = 0;
  std::string process_id;
  std::string node;
  std::string payload;
};
std::string EncodeHeartbeat(const LunHeartbeat& h);  // not padded
// `*total_bytes`: how many bytes the whole copy takes (0 when `data` does not
// start with a heartbeat header). nullopt when it is not a valid heartbeat,
// or when `data` is shorter than `*total_bytes` (then read that much again).
std::optional<LunHeartbeat> DecodeHeartbeat(absl::string_view data,
                                            size_t* total_bytes);

// An outbox cell: a message from the slot's owner to `dst`.
struct LunCell {
  uint64_t sequence = 0;  // per sender, from 1; 0 = free
  uint64_t time_ns = 0;
  uint64_t nonce = 0;  // the sender's claim
  std::string dst;
  std::string name;
  std::string payload;
};
std::string EncodeCell(const LunCell& c);  // kLunBlock bytes
std::optional<LunCell> DecodeCell(absl::string_view block);

// The taken table: per sender slot, the sender's claim nonce and the highest
// sequence this slot's owner took from it.
struct LunTaken {
  uint64_t nonce[kLunMaxSlots] = {};
  uint64_t sequence[kLunMaxSlots] = {};
};
std::string EncodeTaken(const LunTaken& t);  // kLunBlock bytes
// A zero or torn block decodes as empty.
LunTaken DecodeTaken(absl::string_view block);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_LAYOUT_H_
