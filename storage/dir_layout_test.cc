#include "storage/dir_layout.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

using ::testing::ElementsAre;

TEST(DirLayout, ChannelNames) {
  EXPECT_THAT(ValidateChannelName("s-0123456789abcdef-c2s"), IsOk());
  EXPECT_THAT(ValidateChannelName(std::string(128, 'a')), IsOk());
  for (const std::string& bad : std::vector<std::string>{
           "", ".hidden", "a/b", "UPPER", "sp ace", "..", std::string(129, 'a'),
           std::string("nul\0", 4)}) {
    EXPECT_THAT(ValidateChannelName(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(ValidateProcessId("Host-1.123.456"), IsOk());
}

TEST(DirLayout, SegmentNamesRoundTripAndForeignNamesAreSeparated) {
  EXPECT_EQ(SegmentFileName(0x1f), "000000000000001f.seg");
  EXPECT_EQ(ParseSegmentFileName("000000000000001f.seg"), 0x1f);
  EXPECT_EQ(ParseSegmentFileName("000000000000001F.seg"), std::nullopt);
  EXPECT_EQ(ParseSegmentFileName("0000000000000000.seg"), std::nullopt);
  EXPECT_EQ(ParseSegmentFileName("1.seg"), std::nullopt);
  std::vector<std::string> foreign;
  EXPECT_THAT(SegmentIndexes({"0000000000000002.seg", "LOCK", ".tmp-x",
                              "0000000000000001.seg", "core"},
                             &foreign),
              ElementsAre(1, 2));
  EXPECT_THAT(foreign, ElementsAre("core"));
}

class ScanTest : public ::testing::Test {
 protected:
  void Add(uint64_t offset, std::string payload, bool commit) {
    Record r = DataRecord(offset, std::move(payload));
    AppendEncodedRecord(r.header, r.payload, commit, "", &data_);
  }
  ScanResult Scan(size_t stop_after = SIZE_MAX) {
    return ScanRecords(data_, "", stop_after, &records_);
  }
  std::string data_;
  std::vector<DecodedRecord> records_;
};

TEST_F(ScanTest, CommittedEndIsTheLastBatchEnd) {
  Add(0, "a", false);
  Add(1, "b", true);
  const size_t batch = data_.size();
  Add(2, "c", false);
  const ScanResult r = Scan();
  EXPECT_EQ(r.committed_end, batch);
  EXPECT_EQ(r.committed_records, 2u);
  EXPECT_EQ(r.scanned_end, data_.size());
  EXPECT_EQ(records_.size(), 3u);
}

TEST_F(ScanTest, StopsAtBatchBoundaryAfterStopAfter) {
  Add(0, "a", true);
  const size_t first = data_.size();
  Add(1, "b", true);
  EXPECT_EQ(Scan(1).committed_end, first);
  EXPECT_EQ(Scan().committed_end, data_.size());
}

TEST_F(ScanTest, TornTailIsIncompleteAndZerosArePending) {
  Add(0, "a", true);
  const size_t good = data_.size();
  Add(1, "bcd", true);
  data_.resize(data_.size() - 2);
  ScanResult r = Scan();
  EXPECT_EQ(r.stop, DecodeResult::kIncomplete);
  EXPECT_EQ(r.committed_end, good);
  data_.resize(good);
  data_.append(300, '\0');
  r = Scan();
  EXPECT_EQ(r.stop, DecodeResult::kIncomplete);
}

TEST_F(ScanTest, DamagedLastRecordIsMarkedLast) {
  Add(0, "a", true);
  Add(1, "b", true);
  data_[data_.size() - 1] ^= 1;
  ScanResult r = Scan();
  EXPECT_EQ(r.stop, DecodeResult::kInvalid);
  EXPECT_TRUE(r.invalid_is_last);
  Add(2, "c", true);  // now something follows the damaged record
  r = Scan();
  EXPECT_EQ(r.stop, DecodeResult::kInvalid);
  EXPECT_FALSE(r.invalid_is_last);
}

TEST_F(ScanTest, GarbageAtTheTailIsNeverMarkedLast) {
  Add(0, "a", true);
  data_.append("DWRC");
  data_.append(100, 'g');
  const ScanResult r = Scan();
  EXPECT_EQ(r.stop, DecodeResult::kInvalid);
  EXPECT_FALSE(r.invalid_is_last);
}

}  // namespace
}  // namespace diskwire::storage
