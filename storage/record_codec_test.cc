#include "storage/record_codec.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/golden_records.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;

class RecordCodecTest : public ::testing::Test {
 protected:
  static RecordHeader Header(RecordType type, uint64_t offset) {
    RecordHeader h;
    h.type = type;
    h.session_id = {0x1111222233334444, 0x5555666677778888};
    h.direction = kServerToClient;
    h.stream_offset = offset;
    h.ack_offset = 77;
    h.timestamp_ns = 1'700'000'000'123'456'789;
    return h;
  }
  static std::string Encode(const RecordHeader& h, absl::string_view payload,
                            absl::string_view key = "", bool commit = true) {
    std::string out;
    AppendEncodedRecord(h, payload, commit, key, &out);
    return out;
  }
  static DecodeResult Decode(absl::string_view bytes, absl::string_view key,
                             DecodedRecord* rec) {
    return DecodeRecord(bytes, key, rec);
  }
  const std::string key_ = std::string(kMacKeySize, 'k');
};

TEST_F(RecordCodecTest, RoundTripsEveryField) {
  const RecordHeader h = Header(RecordType::kData, 1234);
  const std::string bytes = Encode(h, "payload");
  ASSERT_EQ(bytes.size(), EncodedRecordSize(7, false));
  DecodedRecord rec;
  ASSERT_EQ(Decode(bytes, "", &rec).kind, DecodeResult::kRecord);
  EXPECT_EQ(rec.header, h);
  EXPECT_EQ(rec.payload, "payload");
  EXPECT_TRUE(rec.commit);
  EXPECT_EQ(rec.size, bytes.size());
}

TEST_F(RecordCodecTest, RoundTripsWithMacAndEmptyPayload) {
  const RecordHeader h = Header(RecordType::kFin, 9);
  const std::string bytes = Encode(h, "", key_, /*commit=*/false);
  ASSERT_EQ(bytes.size(), kRecordHeaderSize + kMacSize);
  DecodedRecord rec;
  ASSERT_EQ(Decode(bytes, key_, &rec).kind, DecodeResult::kRecord);
  EXPECT_EQ(rec.header, h);
  EXPECT_FALSE(rec.commit);
}

TEST_F(RecordCodecTest, EveryProperPrefixIsIncomplete) {
  const std::string bytes =
      Encode(Header(RecordType::kData, 0), "abcdef", key_);
  for (size_t n = 0; n < bytes.size(); ++n) {
    DecodedRecord rec;
    EXPECT_EQ(Decode(bytes.substr(0, n), key_, &rec).kind,
              DecodeResult::kIncomplete)
        << "prefix " << n;
  }
}

TEST_F(RecordCodecTest, EveryBitFlipIsNeverDelivered) {
  const std::string bytes = Encode(Header(RecordType::kData, 0), "abcdef");
  for (size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string bad = bytes;
    bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    DecodedRecord rec;
    EXPECT_NE(Decode(bad, "", &rec).kind, DecodeResult::kRecord) << bit;
  }
}

TEST_F(RecordCodecTest, ChecksumMismatchIsDataLoss) {
  std::string bytes = Encode(Header(RecordType::kData, 0), "abcdef");
  bytes[kRecordHeaderSize + 2] ^= 0x40;
  DecodedRecord rec;
  const DecodeResult r = Decode(bytes, "", &rec);
  EXPECT_EQ(r.kind, DecodeResult::kInvalid);
  EXPECT_THAT(r.error, StatusIs(StatusCode::kDataLoss,
                                ::testing::HasSubstr("checksum")));
}

TEST_F(RecordCodecTest, ZeroFilledSpaceIsInvalid) {
  DecodedRecord rec;
  EXPECT_THAT(Decode(std::string(200, '\0'), "", &rec).error,
              StatusIs(StatusCode::kDataLoss, ::testing::HasSubstr("magic")));
}

TEST_F(RecordCodecTest, NewerVersionIsFailedPrecondition) {
  std::string bytes = Encode(Header(RecordType::kData, 0), "x");
  bytes[4] = 2;
  DecodedRecord rec;
  EXPECT_THAT(Decode(bytes, "", &rec).error,
              StatusIs(StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("version 2")));
}

TEST_F(RecordCodecTest, HugeLengthIsRejectedWithoutWaiting) {
  std::string bytes = Encode(Header(RecordType::kData, 0), "x");
  bytes[11] = 0x7f;  // length ≈ 2 GiB
  DecodedRecord rec;
  EXPECT_THAT(Decode(bytes, "", &rec).error,
              StatusIs(StatusCode::kDataLoss, ::testing::HasSubstr("length")));
}

TEST_F(RecordCodecTest, UnknownTypeAndFlagsAreDataLoss) {
  for (int at : {5, 6, 7}) {
    std::string bytes = Encode(Header(RecordType::kData, 0), "x");
    bytes[at] = static_cast<char>(0x80);
    DecodedRecord rec;
    EXPECT_THAT(Decode(bytes, "", &rec).error, StatusIs(StatusCode::kDataLoss))
        << "byte " << at;
  }
}

TEST_F(RecordCodecTest, KeyRequiresValidMac) {
  DecodedRecord rec;
  EXPECT_THAT(
      Decode(Encode(Header(RecordType::kData, 0), "x"), key_, &rec).error,
      StatusIs(StatusCode::kUnauthenticated, ::testing::HasSubstr("no MAC")));
  const std::string other_key(kMacKeySize, 'z');
  EXPECT_THAT(
      Decode(Encode(Header(RecordType::kData, 0), "x", other_key), key_, &rec)
          .error,
      StatusIs(StatusCode::kUnauthenticated, ::testing::HasSubstr("mismatch")));
  EXPECT_THAT(
      Decode(Encode(Header(RecordType::kData, 0), "x", key_), "", &rec).error,
      StatusIs(StatusCode::kFailedPrecondition,
               ::testing::HasSubstr("no key")));
}

TEST_F(RecordCodecTest, SegmentHeaderRoundTripAndCorruption) {
  char buf[kSegmentHeaderSize];
  EncodeSegmentHeader(7, 4096, buf);
  uint64_t index = 0, first = 0;
  ASSERT_THAT(
      DecodeSegmentHeader(absl::string_view(buf, sizeof(buf)), &index, &first),
      IsOk());
  EXPECT_EQ(index, 7u);
  EXPECT_EQ(first, 4096u);
  buf[17] ^= 1;
  EXPECT_THAT(
      DecodeSegmentHeader(absl::string_view(buf, sizeof(buf)), &index, &first),
      StatusIs(StatusCode::kDataLoss, ::testing::HasSubstr("checksum")));
  EXPECT_THAT(DecodeSegmentHeader("DWSG", &index, &first),
              StatusIs(StatusCode::kDataLoss));
}

// A format change must show up as a diff of testdata/. Regenerate with
//   DW_WRITE_GOLDEN=$PWD/testdata bazel test //storage:record_codec_test
class GoldenTest : public ::testing::TestWithParam<GoldenFile> {};

TEST_P(GoldenTest, EncodingMatchesGoldenFileByteForByte) {
  const GoldenFile& golden = GetParam();
  const std::string encoded = EncodeGolden(golden);
  if (const char* dir = std::getenv("DW_WRITE_GOLDEN")) {
    std::ofstream(std::string(dir) + "/" + golden.file_name, std::ios::binary)
        << encoded;
  }
  std::ifstream in("testdata/" + golden.file_name, std::ios::binary);
  ASSERT_TRUE(in) << "missing testdata/" << golden.file_name;
  std::stringstream file;
  file << in.rdbuf();
  const std::string contents = file.str();
  EXPECT_EQ(contents, encoded) << "format changed: update docs/FORMAT.md, "
                                  "bump the version, regenerate golden";
  // And it decodes back to the same records.
  absl::string_view rest(contents);
  uint64_t index, first;
  ASSERT_THAT(DecodeSegmentHeader(rest, &index, &first), IsOk());
  rest.remove_prefix(kSegmentHeaderSize);
  for (const Record& want : golden.records) {
    DecodedRecord rec;
    ASSERT_EQ(DecodeRecord(rest, golden.key, &rec).kind, DecodeResult::kRecord);
    EXPECT_EQ(rec.header, want.header);
    EXPECT_EQ(rec.payload, want.payload);
    rest.remove_prefix(rec.size);
  }
  EXPECT_TRUE(rest.empty());
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenTest, ::testing::ValuesIn(GoldenFiles()),
                         [](const auto& info) { return info.param.test_name; });

}  // namespace
}  // namespace diskwire::storage
