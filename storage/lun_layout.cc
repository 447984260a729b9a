#include "storage/lun_layout.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"

namespace diskwire::storage {
namespace {

using absl::little_endian::Load32;
using absl::little_endian::Load64;
using absl::little_endian::Store32;
using absl::little_endian::Store64;

constexpr char kClaimMagic[4] = {'D', 'W', 'C', 'L'};
constexpr char kExtentMagic[4] = {'D', 'W', 'E', 'X'};
constexpr char kFrameMagic[4] = {'D', 'W', 'F', 'R'};
constexpr char kHeartbeatMagic[4] = {'D', 'W', 'H', 'B'};
constexpr char kCellMagic[4] = {'D', 'W', 'M', 'B'};
constexpr char kTakenMagic[4] = {'D', 'W', 'T', 'K'};

constexpr size_t kSuperChecksumAt = kLunBlock - 8;
constexpr size_t kClaimSize = 256;  // the rest of the claim block is zero
constexpr size_t kClaimChecksumAt = kClaimSize - 8;
constexpr size_t kEntryChecksumAt = kLunExtentEntrySize - 8;

uint64_t Hash(absl::string_view bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// A NUL-padded string field of `size` bytes.
void PutName(absl::string_view name, size_t size, char* out) {
  std::memset(out, 0, size);
  std::memcpy(out, name.data(), std::min(name.size(), size));
}
std::string GetName(const char* in, size_t size) {
  return std::string(in, strnlen(in, size));
}

}  // namespace

uint64_t LunGeometry::map_bytes() const {
  return RoundUp(uint64_t{extents_per_slot} * kLunExtentEntrySize, kLunBlock);
}
uint64_t LunGeometry::slot_bytes() const {
  return kLunBlock + 2 * uint64_t{heartbeat_bytes} + kLunBlock +
         uint64_t{outbox_cells} * kLunBlock + map_bytes();
}
uint64_t LunGeometry::slot_offset(uint32_t slot) const {
  return kLunBlock + uint64_t{slot} * slot_bytes();
}
uint64_t LunGeometry::heartbeat_offset(uint32_t slot, int copy) const {
  return slot_offset(slot) + kLunBlock + uint64_t(copy) * heartbeat_bytes;
}
uint64_t LunGeometry::taken_offset(uint32_t slot) const {
  return heartbeat_offset(slot, 2);
}
uint64_t LunGeometry::cell_offset(uint32_t slot, uint32_t cell) const {
  return taken_offset(slot) + kLunBlock + uint64_t{cell} * kLunBlock;
}
uint64_t LunGeometry::map_offset(uint32_t slot) const {
  return cell_offset(slot, outbox_cells);
}
uint64_t LunGeometry::data_offset() const { return slot_offset(slots); }
uint64_t LunGeometry::extent_offset(uint32_t slot, uint32_t extent) const {
  return data_offset() +
         (uint64_t{slot} * extents_per_slot + extent) * extent_bytes;
}
uint64_t LunGeometry::used_bytes() const { return extent_offset(slots, 0); }

absl::StatusOr<LunGeometry> PlanLun(uint64_t device_bytes,
                                    const LunFormatRequest& request) {
  LunGeometry g;
  g.device_bytes = device_bytes;
  // Provisional: the default is chosen once the slots are (below).
  g.extent_bytes = request.extent_bytes ? request.extent_bytes : kLunMinExtent;
  g.heartbeat_bytes =
      request.heartbeat_bytes ? request.heartbeat_bytes : 256u << 10;
  g.outbox_cells = request.outbox_cells ? request.outbox_cells : 16;
  g.flags = request.keyed ? kLunFlagKeyed : 0;
  if (g.extent_bytes % kLunBlock != 0 || g.extent_bytes < kLunMinExtent) {
    return absl::InvalidArgumentError(
        absl::StrCat("extent size ", g.extent_bytes,
                     " must be a multiple of 4096 and at least ", kLunMinExtent,
                     " bytes (the engine's largest record, 64 KiB, must fit)"));
  }
  if (g.heartbeat_bytes % kLunBlock != 0 || g.heartbeat_bytes < kLunBlock) {
    return absl::InvalidArgumentError(
        absl::StrCat("heartbeat size ", g.heartbeat_bytes,
                     " must be a multiple of 4096 bytes"));
  }
  if (g.outbox_cells < 1 || g.outbox_cells > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("outbox cells ", g.outbox_cells, " must be 1..4096"));
  }
  if (request.slots > kLunMaxSlots) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slots ", request.slots, ": at most ", kLunMaxSlots, " fit"));
  }
  // Each slot needs its metadata and at least 4 extents (a channel's active
  // one, one to rotate into, and a session's other channels).
  constexpr uint32_t kMinExtents = 4;
  g.slots = request.slots ? request.slots : 64;
  auto fits = [&](uint32_t slots, uint32_t extents) {
    g.slots = slots;
    g.extents_per_slot = extents;
    return g.used_bytes() <= device_bytes;
  };
  if (request.slots == 0) {
    while (g.slots > 2 && !fits(g.slots, kMinExtents)) g.slots /= 2;
  }
  if (request.extent_bytes == 0) {
    // Large extents write and rotate less (an append of 256 KiB fits a
    // 1 MiB extent three times, a 256 KiB one never whole); small ones give
    // a slot more of them, and every channel on the storage path holds one.
    // About 64 per slot, between the smallest extent and 1 MiB.
    const uint64_t share = device_bytes / g.slots / 64 / kLunBlock * kLunBlock;
    g.extent_bytes = static_cast<uint32_t>(
        std::clamp<uint64_t>(share, kLunMinExtent, 1u << 20));
  }
  if (!fits(g.slots, kMinExtents)) {
    g.extents_per_slot = kMinExtents;
    return absl::InvalidArgumentError(
        absl::StrCat("too small: ", device_bytes, " bytes, and ", g.slots,
                     " slots of ", kMinExtents, " extents of ", g.extent_bytes,
                     " bytes need ", g.used_bytes()));
  }
  // As many extents per slot as fit (the map grows with them).
  uint32_t lo = kMinExtents, hi = 1u << 24;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (fits(g.slots, mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  fits(g.slots, lo);
  return g;
}

std::string EncodeSuperblock(const LunGeometry& g) {
  std::string b(kLunBlock, '\0');
  char* p = b.data();
  std::memcpy(p, kLunMagic, 8);
  Store32(p + 8, g.version);
  Store32(p + 12, g.flags);
  std::memcpy(p + 16, g.volume_id.data(),
              std::min<size_t>(16, g.volume_id.size()));
  Store64(p + 32, g.device_bytes);
  Store32(p + 40, kLunBlock);
  Store32(p + 44, g.slots);
  Store32(p + 48, g.extent_bytes);
  Store32(p + 52, g.extents_per_slot);
  Store32(p + 56, g.heartbeat_bytes);
  Store32(p + 60, g.outbox_cells);
  Store64(p + 64, g.created_ns);
  Store64(p + 72, g.slot_offset(0));
  Store64(p + 80, g.slot_bytes());
  Store64(p + 88, g.data_offset());
  Store64(p + kSuperChecksumAt, Hash(absl::string_view(p, kSuperChecksumAt)));
  return b;
}

bool HasLunMagic(absl::string_view block) {
  return block.size() >= 8 && std::memcmp(block.data(), kLunMagic, 8) == 0;
}

absl::StatusOr<LunGeometry> DecodeSuperblock(absl::string_view block) {
  if (!HasLunMagic(block)) {
    return absl::NotFoundError("no diskwire superblock");
  }
  if (block.size() < kLunBlock) {
    return absl::DataLossError("superblock cut short");
  }
  const char* p = block.data();
  if (Load64(p + kSuperChecksumAt) !=
      Hash(absl::string_view(p, kSuperChecksumAt))) {
    return absl::DataLossError("superblock checksum mismatch");
  }
  LunGeometry g;
  g.version = Load32(p + 8);
  if (g.version != kLunVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("formatted by diskwire format version ", g.version,
                     ", this diskwire reads version ", kLunVersion));
  }
  g.flags = Load32(p + 12);
  g.volume_id.assign(p + 16, 16);
  g.device_bytes = Load64(p + 32);
  g.slots = Load32(p + 44);
  g.extent_bytes = Load32(p + 48);
  g.extents_per_slot = Load32(p + 52);
  g.heartbeat_bytes = Load32(p + 56);
  g.outbox_cells = Load32(p + 60);
  g.created_ns = Load64(p + 64);
  const bool sane =
      Load32(p + 40) == kLunBlock && (g.flags & ~kLunFlagKeyed) == 0 &&
      g.slots >= 1 && g.slots <= kLunMaxSlots && g.extent_bytes >= kLunBlock &&
      g.extent_bytes % kLunBlock == 0 && g.extents_per_slot >= 1 &&
      g.heartbeat_bytes >= kLunBlock && g.heartbeat_bytes % kLunBlock == 0 &&
      g.outbox_cells >= 1 && g.outbox_cells <= 4096 &&
      Load64(p + 72) == g.slot_offset(0) && Load64(p + 80) == g.slot_bytes() &&
      Load64(p + 88) == g.data_offset() && g.used_bytes() <= g.device_bytes;
  if (!sane) {
    return absl::DataLossError("superblock geometry is inconsistent");
  }
  return g;
}

std::string EncodeClaim(const LunClaim& c) {
  std::string b(kLunBlock, '\0');
  char* p = b.data();
  std::memcpy(p, kClaimMagic, 4);
  Store32(p + 4, c.state);
  Store64(p + 8, c.nonce);
  Store64(p + 16, c.claimed_ns);
  Store64(p + 24, c.renewed_ns);
  Store64(p + 32, static_cast<uint64_t>(c.pid));
  PutName(c.node, 64, p + 40);
  PutName(c.process_id, kLunNameMax, p + 104);
  Store64(p + kClaimChecksumAt, Hash(absl::string_view(p, kClaimChecksumAt)));
  return b;
}

std::optional<LunClaim> DecodeClaim(absl::string_view block) {
  if (block.size() < kClaimSize || std::memcmp(block.data(), kClaimMagic, 4)) {
    return std::nullopt;
  }
  const char* p = block.data();
  if (Load64(p + kClaimChecksumAt) !=
      Hash(absl::string_view(p, kClaimChecksumAt))) {
    return std::nullopt;
  }
  LunClaim c;
  const uint32_t state = Load32(p + 4);
  if (state > LunClaim::kReleased) return std::nullopt;
  c.state = static_cast<LunClaim::State>(state);
  c.nonce = Load64(p + 8);
  c.claimed_ns = Load64(p + 16);
  c.renewed_ns = Load64(p + 24);
  c.pid = static_cast<int64_t>(Load64(p + 32));
  c.node = GetName(p + 40, 64);
  c.process_id = GetName(p + 104, kLunNameMax);
  return c;
}

bool TornClaim(absl::string_view block) {
  return block.size() >= 4 && std::memcmp(block.data(), kClaimMagic, 4) == 0 &&
         !DecodeClaim(block);
}

bool TornExtentEntry(absl::string_view entry) {
  return entry.size() >= 4 && std::memcmp(entry.data(), kExtentMagic, 4) == 0 &&
         !DecodeExtentEntry(entry);
}

void EncodeExtentEntry(const LunExtentEntry& e, char* p) {
  std::memset(p, 0, kLunExtentEntrySize);
  if (e.generation == 0) return;  // a free entry is all zeros
  std::memcpy(p, kExtentMagic, 4);
  Store32(p + 4, static_cast<uint32_t>(e.name.size()));
  Store64(p + 8, e.generation);
  Store64(p + 16, e.segment);
  Store64(p + 24, e.first_offset);
  PutName(e.name, kLunNameMax, p + 32);
  Store64(p + 160, e.birth);
  Store64(p + kEntryChecksumAt, Hash(absl::string_view(p, kEntryChecksumAt)));
}

std::optional<LunExtentEntry> DecodeExtentEntry(absl::string_view entry) {
  if (entry.size() < kLunExtentEntrySize ||
      std::memcmp(entry.data(), kExtentMagic, 4)) {
    return std::nullopt;
  }
  const char* p = entry.data();
  if (Load64(p + kEntryChecksumAt) !=
      Hash(absl::string_view(p, kEntryChecksumAt))) {
    return std::nullopt;
  }
  LunExtentEntry e;
  const uint32_t len = Load32(p + 4);
  e.generation = Load64(p + 8);
  e.segment = Load64(p + 16);
  e.first_offset = Load64(p + 24);
  e.name = GetName(p + 32, kLunNameMax);
  e.birth = Load64(p + 160);
  if (e.generation == 0 || e.birth == 0 || len != e.name.size() ||
      e.name.empty()) {
    return std::nullopt;
  }
  return e;
}

void EncodeFrameHeader(const LunFrame& f, char* p) {
  std::memcpy(p, kFrameMagic, 4);
  Store32(p + 4, f.length);
  Store64(p + 8, f.generation);
  Store32(p + 16, f.position);
  Store32(p + 20, 0);
  Store64(p + 24, Hash(absl::string_view(p, 24)));
}

std::optional<LunFrame> DecodeFrameHeader(absl::string_view h) {
  if (h.size() < kLunFrameHeaderSize || std::memcmp(h.data(), kFrameMagic, 4))
    return std::nullopt;
  const char* p = h.data();
  if (Load64(p + 24) != Hash(absl::string_view(p, 24)) || Load32(p + 20) != 0)
    return std::nullopt;
  return LunFrame{Load32(p + 4), Load64(p + 8), Load32(p + 16)};
}

// Header: magic[4] payload_len[4] seq[8] time[8] pid[8] nonce[8] zero[8]
// checksum[8] zero[8] process_id[128] node[128]; checksum over bytes 0..48
// and 64..end of payload.
std::string EncodeHeartbeat(const LunHeartbeat& h) {
  std::string b(kLunHeartbeatHeaderSize, '\0');
  char* p = b.data();
  std::memcpy(p, kHeartbeatMagic, 4);
  Store32(p + 4, static_cast<uint32_t>(h.payload.size()));
  Store64(p + 8, h.sequence);
  Store64(p + 16, h.time_ns);
  Store64(p + 24, static_cast<uint64_t>(h.pid));
  Store64(p + 32, h.nonce);
  PutName(h.process_id, kLunNameMax, p + 64);
  PutName(h.node, kLunNameMax, p + 192);
  b += h.payload;
  uint64_t c = XXH3_64bits(b.data(), 48);
  c = XXH3_64bits_withSeed(b.data() + 64, b.size() - 64, c);
  Store64(b.data() + 48, c);
  return b;
}

std::optional<LunHeartbeat> DecodeHeartbeat(absl::string_view data,
                                            size_t* total_bytes) {
  *total_bytes = 0;
  if (data.size() < kLunHeartbeatHeaderSize ||
      std::memcmp(data.data(), kHeartbeatMagic, 4)) {
    return std::nullopt;
  }
  const char* p = data.data();
  *total_bytes = kLunHeartbeatHeaderSize + Load32(p + 4);
  if (data.size() < *total_bytes) return std::nullopt;
  uint64_t c = XXH3_64bits(p, 48);
  c = XXH3_64bits_withSeed(p + 64, *total_bytes - 64, c);
  if (c != Load64(p + 48)) return std::nullopt;
  LunHeartbeat h;
  h.sequence = Load64(p + 8);
  h.time_ns = Load64(p + 16);
  h.pid = static_cast<int64_t>(Load64(p + 24));
  h.nonce = Load64(p + 32);
  h.process_id = GetName(p + 64, kLunNameMax);
  h.node = GetName(p + 192, kLunNameMax);
  h.payload.assign(p + kLunHeartbeatHeaderSize, Load32(p + 4));
  return h;
}

// Cell: magic[4] payload_len[4] seq[8] time[8] nonce[8] checksum[8]
// dst[128] name[128] payload; checksum over 0..32 and 40..end of payload.
std::string EncodeCell(const LunCell& c) {
  std::string b(kLunBlock, '\0');
  if (c.sequence == 0) return b;
  char* p = b.data();
  std::memcpy(p, kCellMagic, 4);
  Store32(p + 4, static_cast<uint32_t>(c.payload.size()));
  Store64(p + 8, c.sequence);
  Store64(p + 16, c.time_ns);
  Store64(p + 24, c.nonce);
  PutName(c.dst, kLunNameMax, p + 40);
  PutName(c.name, kLunNameMax, p + 168);
  std::memcpy(p + kLunCellHeaderSize, c.payload.data(),
              std::min(c.payload.size(), kLunCellPayloadMax));
  uint64_t h = XXH3_64bits(p, 32);
  h = XXH3_64bits_withSeed(p + 40, kLunCellHeaderSize - 40 + c.payload.size(),
                           h);
  Store64(p + 32, h);
  return b;
}

std::optional<LunCell> DecodeCell(absl::string_view block) {
  if (block.size() < kLunBlock || std::memcmp(block.data(), kCellMagic, 4))
    return std::nullopt;
  const char* p = block.data();
  const uint32_t len = Load32(p + 4);
  if (len > kLunCellPayloadMax) return std::nullopt;
  uint64_t h = XXH3_64bits(p, 32);
  h = XXH3_64bits_withSeed(p + 40, kLunCellHeaderSize - 40 + len, h);
  if (h != Load64(p + 32)) return std::nullopt;
  LunCell c;
  c.sequence = Load64(p + 8);
  c.time_ns = Load64(p + 16);
  c.nonce = Load64(p + 24);
  c.dst = GetName(p + 40, kLunNameMax);
  c.name = GetName(p + 168, kLunNameMax);
  c.payload.assign(p + kLunCellHeaderSize, len);
  if (c.sequence == 0) return std::nullopt;
  return c;
}

std::string EncodeTaken(const LunTaken& t) {
  std::string b(kLunBlock, '\0');
  char* p = b.data();
  std::memcpy(p, kTakenMagic, 4);
  for (uint32_t i = 0; i < kLunMaxSlots; ++i) {
    Store64(p + 8 + i * 16, t.nonce[i]);
    Store64(p + 16 + i * 16, t.sequence[i]);
  }
  Store64(p + kLunBlock - 8, Hash(absl::string_view(p, kLunBlock - 8)));
  return b;
}

LunTaken DecodeTaken(absl::string_view block) {
  LunTaken t;
  if (block.size() < kLunBlock || std::memcmp(block.data(), kTakenMagic, 4))
    return t;
  const char* p = block.data();
  if (Load64(p + kLunBlock - 8) != Hash(absl::string_view(p, kLunBlock - 8)))
    return t;
  for (uint32_t i = 0; i < kLunMaxSlots; ++i) {
    t.nonce[i] = Load64(p + 8 + i * 16);
    t.sequence[i] = Load64(p + 16 + i * 16);
  }
  return t;
}

}  // namespace diskwire::storage
