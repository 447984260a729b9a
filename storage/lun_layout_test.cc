#include "storage/lun_layout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "base/status_matchers.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

using ::testing::HasSubstr;

LunGeometry Planned(uint64_t bytes, LunFormatRequest r = {}) {
  absl::StatusOr<LunGeometry> g = PlanLun(bytes, r);
  EXPECT_TRUE(g.ok()) << g.status();
  g->volume_id = std::string(16, 'v');
  return *g;
}

TEST(LunLayoutTest, PlanFillsTheDeviceWithoutOverlap) {
  const LunGeometry g = Planned(1ull << 30);
  EXPECT_EQ(g.slots, 64u);
  EXPECT_LE(g.used_bytes(), 1ull << 30);
  EXPECT_GT(g.used_bytes() + uint64_t{g.slots} * g.extent_bytes, 1ull << 30)
      << "another extent per slot would have fit";
  EXPECT_EQ(g.slot_offset(0), kLunBlock);
  EXPECT_EQ(g.map_offset(0) + g.map_bytes(), g.slot_offset(1));
  EXPECT_EQ(g.data_offset() % kLunBlock, 0u);
  EXPECT_EQ(g.extent_offset(1, 0),
            g.extent_offset(0, g.extents_per_slot - 1) + g.extent_bytes);
}

TEST(LunLayoutTest, SmallDevicesGetFewerSlotsAndTooSmallOnesAreRefused) {
  EXPECT_LT(Planned(32ull << 20).slots, 64u);
  EXPECT_THAT(PlanLun(1 << 20, {}), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("too small")));
  LunFormatRequest r;
  r.slots = 300;
  EXPECT_THAT(PlanLun(1ull << 30, r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("255")));
  r = {};
  r.extent_bytes = 100000;
  EXPECT_THAT(PlanLun(1ull << 30, r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("multiple of 4096")));
}

TEST(LunLayoutTest, SuperblockRoundTripsAndRejectsDamage) {
  const LunGeometry g = Planned(256ull << 20);
  std::string block = EncodeSuperblock(g);
  ASSERT_EQ(block.size(), kLunBlock);
  ASSERT_OK_AND_ASSIGN(LunGeometry back, DecodeSuperblock(block));
  EXPECT_EQ(back.slots, g.slots);
  EXPECT_EQ(back.extents_per_slot, g.extents_per_slot);
  EXPECT_EQ(back.data_offset(), g.data_offset());
  EXPECT_EQ(back.volume_id, g.volume_id);

  std::string flipped = block;
  flipped[44] ^= 1;
  EXPECT_THAT(DecodeSuperblock(flipped),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("checksum")));
  LunGeometry newer = g;
  newer.version = kLunVersion + 1;
  EXPECT_THAT(
      DecodeSuperblock(EncodeSuperblock(newer)),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("version 2")));
  EXPECT_THAT(DecodeSuperblock(std::string(kLunBlock, '\0')),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(LunLayoutTest, ClaimsEntriesFramesCellsRoundTrip) {
  LunClaim c;
  c.state = LunClaim::kClaimed;
  c.nonce = 42;
  c.renewed_ns = 7;
  c.pid = 1234;
  c.node = "hosta";
  c.process_id = "hosta.1234.abc";
  std::string block = EncodeClaim(c);
  std::optional<LunClaim> back = DecodeClaim(block);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->process_id, c.process_id);
  EXPECT_EQ(back->nonce, 42u);
  block[110] ^= 1;
  EXPECT_FALSE(DecodeClaim(block)) << "a torn claim counts as no claim";

  char entry[kLunExtentEntrySize];
  EncodeExtentEntry({9, 3, 1000, "s-abc.0", 77}, entry);
  std::optional<LunExtentEntry> e =
      DecodeExtentEntry(absl::string_view(entry, sizeof(entry)));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->name, "s-abc.0");
  EXPECT_EQ(e->first_offset, 1000u);
  EXPECT_EQ(e->birth, 77u);
  EncodeExtentEntry({}, entry);
  EXPECT_FALSE(DecodeExtentEntry(absl::string_view(entry, sizeof(entry))));

  char frame[kLunFrameHeaderSize];
  EncodeFrameHeader({100, 9, 512}, frame);
  std::optional<LunFrame> f =
      DecodeFrameHeader(absl::string_view(frame, sizeof(frame)));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->position, 512u);
  frame[5] ^= 1;
  EXPECT_FALSE(DecodeFrameHeader(absl::string_view(frame, sizeof(frame))));

  LunCell cell;
  cell.sequence = 5;
  cell.dst = "hostb.1.x";
  cell.name = "m1";
  cell.payload = std::string(kLunCellPayloadMax, 'p');
  std::optional<LunCell> cb = DecodeCell(EncodeCell(cell));
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->payload, cell.payload);

  LunTaken t;
  t.nonce[254] = 1;
  t.sequence[254] = 77;
  EXPECT_EQ(DecodeTaken(EncodeTaken(t)).sequence[254], 77u);
}

TEST(LunLayoutTest, HeartbeatsSayHowLongTheyAre) {
  LunHeartbeat h;
  h.sequence = 3;
  h.process_id = "p";
  h.node = "n";
  h.payload = std::string(10000, 'x');
  const std::string bytes = EncodeHeartbeat(h);
  size_t total = 0;
  EXPECT_FALSE(DecodeHeartbeat(bytes.substr(0, 4096), &total));
  EXPECT_EQ(total, bytes.size());
  std::optional<LunHeartbeat> back = DecodeHeartbeat(bytes, &total);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->payload, h.payload);
  std::string bad = bytes;
  bad[5000] ^= 1;
  EXPECT_FALSE(DecodeHeartbeat(bad, &total));
}

}  // namespace
}  // namespace diskwire::storage

namespace diskwire::storage {
namespace {

// One block of each kind, with fixed contents, as a LUN holds them:
// superblock, claim, heartbeat copy, taken table, outbox cell, a map block
// with one entry, and an extent block with one frame. A change to the LUN
// format must show up as a diff of testdata/. Regenerate with
//   DW_WRITE_GOLDEN=$PWD/testdata bazel test //storage:lun_layout_test
std::string GoldenLunBlocks() {
  LunFormatRequest r;
  r.slots = 2;
  r.extent_bytes = 128 << 10;
  r.heartbeat_bytes = 4096;
  r.outbox_cells = 1;
  LunGeometry g = *PlanLun(4 << 20, r);
  g.volume_id = "0123456789abcdef";
  g.created_ns = 1'800'000'000'000'000'000;
  std::string out = EncodeSuperblock(g);

  LunClaim c;
  c.state = LunClaim::kClaimed;
  c.nonce = 0x1122334455667788;
  c.claimed_ns = c.renewed_ns = 1'800'000'000'000'000'000;
  c.pid = 4242;
  c.node = "hosta";
  c.process_id = "hosta.4242.1800000000000000000";
  out += EncodeClaim(c);

  LunHeartbeat h;
  h.sequence = 1;
  h.time_ns = 1'800'000'000'500'000'000;
  h.pid = 4242;
  h.nonce = c.nonce;
  h.process_id = c.process_id;
  h.node = "hosta";
  h.payload = "diskwire-process-report 1\n";
  std::string hb = EncodeHeartbeat(h);
  hb.resize(kLunBlock, '\0');
  out += hb;

  LunTaken t;
  t.nonce[1] = 0x99;
  t.sequence[1] = 3;
  out += EncodeTaken(t);

  LunCell cell;
  cell.sequence = 3;
  cell.time_ns = 1'800'000'000'600'000'000;
  cell.nonce = c.nonce;
  cell.dst = "hostb.77.1800000000000000001";
  cell.name = "failover-1";
  cell.payload = "announce";
  out += EncodeCell(cell);

  std::string map(kLunBlock, '\0');
  EncodeExtentEntry({0xabcdef0123456789, 1, 0, "s-0123-c2s-i0123", 0x5a5a},
                    map.data());
  out += map;

  Record rec;
  rec.header.type = RecordType::kData;
  rec.header.session_id = {1, 2};
  rec.header.stream_offset = 0;
  rec.header.timestamp_ns = 1'800'000'000'700'000'000;
  rec.payload = "hello over the LUN";
  std::string records;
  AppendEncodedRecord(rec.header, rec.payload, true, "", &records);
  std::string frame(kLunFrameHeaderSize, '\0');
  EncodeFrameHeader(
      {static_cast<uint32_t>(records.size()), 0xabcdef0123456789, 0},
      frame.data());
  frame += records;
  frame.resize(kLunBlock, '\0');
  out += frame;
  return out;
}

TEST(LunLayoutGoldenTest, MatchesTestdata) {
  const std::string encoded = GoldenLunBlocks();
  const std::string name = "golden_lun_v1.bin";
  if (const char* dir = std::getenv("DW_WRITE_GOLDEN")) {
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary) << encoded;
  }
  std::ifstream in("testdata/" + name, std::ios::binary);
  ASSERT_TRUE(in) << "missing testdata/" << name;
  const std::string golden((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
  EXPECT_TRUE(golden == encoded)
      << "the LUN format changed: bump kLunVersion, regenerate the golden "
         "file and update docs/FORMAT.md";
  // And what the file holds decodes.
  ASSERT_EQ(golden.size(), 7 * kLunBlock);
  auto block = [&](int i) {
    return absl::string_view(golden).substr(i * kLunBlock, kLunBlock);
  };
  ASSERT_OK_AND_ASSIGN(LunGeometry g, DecodeSuperblock(block(0)));
  EXPECT_EQ(g.slots, 2u);
  EXPECT_EQ(DecodeClaim(block(1))->node, "hosta");
  size_t total = 0;
  EXPECT_EQ(DecodeHeartbeat(block(2), &total)->payload,
            "diskwire-process-report 1\n");
  EXPECT_EQ(DecodeTaken(block(3)).sequence[1], 3u);
  EXPECT_EQ(DecodeCell(block(4))->payload, "announce");
  EXPECT_EQ(DecodeExtentEntry(block(5))->name, "s-0123-c2s-i0123");
  EXPECT_EQ(DecodeFrameHeader(block(6))->length, 64u + 18u);
}

}  // namespace
}  // namespace diskwire::storage
