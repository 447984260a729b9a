// Channel writer and reader of the directory backend: batching, delivery,
// rotation, trimming, offsets and removal.

#include <algorithm>
#include <filesystem>

#include "storage/dir_channel_test_fixture.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;
using ::testing::HasSubstr;

TEST_F(DirChannelTest, AppendedBatchIsReadBackInOrder) {
  auto w = Writer();
  auto r = Reader();
  EXPECT_EQ(ReadAll(*r), "");
  ASSERT_THAT(w->Append({DataRecord(0, "ab"), DataRecord(2, "cde")}), IsOk());
  EXPECT_EQ(ReadAll(*r), "ab|cde");
  EXPECT_EQ(ReadAll(*r), "");
  ASSERT_THAT(w->Append({DataRecord(5, "f")}), IsOk());
  EXPECT_EQ(ReadAll(*r), "f");
}

TEST_F(DirChannelTest, BatchIsOneWriteSyscall) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "first batch creates the segment")}),
              IsOk());
  std::vector<Record> batch;
  for (int i = 1; i <= 300; ++i) {
    batch.push_back(DataRecord(i * 1000, std::string(i % 2 ? 1000 : 10, 'x')));
  }
  const int before = faults_.Calls(FileOp::kWrite);
  ASSERT_THAT(w->Append(batch), IsOk());
  EXPECT_EQ(faults_.Calls(FileOp::kWrite) - before, 1);
}

TEST_F(DirChannelTest, ReaderOfMissingChannelWaitsForIt) {
  auto r = Reader();
  EXPECT_EQ(ReadAll(*r), "");
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "late")}), IsOk());
  EXPECT_EQ(ReadAll(*r), "late");
}

TEST_F(DirChannelTest, TimestampZeroIsFilledAndOthersKept) {
  auto w = Writer();
  Record a = DataRecord(0, "a");
  a.header.timestamp_ns = 0;
  ASSERT_THAT(w->Append({a, DataRecord(1, "b")}), IsOk());
  std::vector<Record> out;
  ASSERT_THAT(Reader()->ReadAvailable(&out, 1000), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_GT(out[0].header.timestamp_ns, 1'600'000'000'000'000'000u);
  EXPECT_EQ(out[1].header.timestamp_ns, 1u);
}

TEST_F(DirChannelTest, MaxBytesSplitsDeliveryButLosesNothing) {
  auto w = Writer();
  std::vector<Record> batch;
  for (int i = 0; i < 10; ++i)
    batch.push_back(DataRecord(i * 100, std::string(100, 'a' + i)));
  ASSERT_THAT(w->Append(batch), IsOk());
  auto r = Reader();
  std::vector<Record> out;
  ASSERT_OK_AND_ASSIGN(size_t n, r->ReadAvailable(&out, 1));
  EXPECT_EQ(n, 1u);
  while (true) {
    ASSERT_OK_AND_ASSIGN(size_t more, r->ReadAvailable(&out, 300));
    if (more == 0) break;
  }
  ASSERT_EQ(out.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i].header.stream_offset, i * 100u);
}

TEST_F(DirChannelTest, RotatesSegmentsAndReaderFollows) {
  WriterOptions o;
  o.segment_bytes = 400;
  auto w = Writer(o);
  auto r = Reader();
  std::string got;
  for (int i = 0; i < 10; ++i) {
    ASSERT_THAT(w->Append({DataRecord(i * 100, std::string(100, 'a' + i))}),
                IsOk());
    if (i % 3 == 0) got += ReadAll(*r);
  }
  got += ReadAll(*r);
  std::string want;
  for (int i = 0; i < 10; ++i) want += std::string(100, 'a' + i);
  got.erase(std::remove(got.begin(), got.end(), '|'), got.end());
  EXPECT_EQ(got, want);
  // Two 164-byte records fit a 400-byte segment after its 32-byte header.
  EXPECT_TRUE(std::filesystem::exists(SegPath(5)));
  EXPECT_FALSE(std::filesystem::exists(SegPath(6)));
}

TEST_F(DirChannelTest, ReaderStartsAtTheSegmentHoldingItsOffset) {
  WriterOptions o;
  o.segment_bytes = 200;
  auto w = Writer(o);
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(w->Append({DataRecord(i * 10, std::string(10, 'a' + i))}),
                IsOk());
  }
  std::filesystem::remove(SegPath(1));  // proves segment 1 is not read
  EXPECT_EQ(ReadAll(*Reader(25)), "cccccccccc|dddddddddd|eeeeeeeeee");
  EXPECT_THAT(Reader(5)->ReadAvailable(new std::vector<Record>, 10),
              StatusIs(StatusCode::kDataLoss, HasSubstr("trimmed")));
}

TEST_F(DirChannelTest, TrimDeletesOnlyWholeAckedSegments) {
  WriterOptions o;
  o.segment_bytes = 150;  // one 74-byte record per segment
  auto w = Writer(o);
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(w->Append({DataRecord(i * 10, std::string(10, 'x'))}), IsOk());
  }
  ASSERT_THAT(w->TrimBelow(25), IsOk());  // segments 1 [0,10) and 2 [10,20)
  EXPECT_FALSE(std::filesystem::exists(SegPath(2)));
  EXPECT_TRUE(std::filesystem::exists(SegPath(3)));
  ASSERT_THAT(w->TrimBelow(1000), IsOk());  // never the active one
  EXPECT_TRUE(std::filesystem::exists(SegPath(4)));
  EXPECT_FALSE(std::filesystem::exists(SegPath(3)));
}

// The consumer got the first bytes another way (the old TCP socket) and
// acknowledged them, so the writer trimmed their segments before this reader
// reached them: SkipTo lets it start, or go on, past the gap.
TEST_F(DirChannelTest, ReaderSkipsSegmentsTrimmedBelowWhatTheConsumerHas) {
  WriterOptions o;
  o.segment_bytes = 150;  // one 74-byte record per segment
  auto w = Writer(o);
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(w->Append({DataRecord(i * 10, std::string(10, 'a' + i))}),
                IsOk());
  }
  auto fresh = Reader(0);
  auto running = Reader(0);
  std::vector<Record> first;
  ASSERT_THAT(running->ReadAvailable(&first, 1), IsOk());  // one record
  ASSERT_EQ(first.size(), 1u);
  ASSERT_THAT(w->TrimBelow(30), IsOk());  // segments 1..3: [0,30)
  EXPECT_THAT(Reader(0)->ReadAvailable(new std::vector<Record>, 10),
              StatusIs(StatusCode::kDataLoss, HasSubstr("trimmed")));
  fresh->SkipTo(30);
  EXPECT_EQ(ReadAll(*fresh), "dddddddddd|eeeeeeeeee");
  running->SkipTo(30);
  EXPECT_EQ(ReadAll(*running), "dddddddddd|eeeeeeeeee");
  // Skipping never hides a gap the consumer lacks.
  auto behind = Reader(0);
  behind->SkipTo(20);
  EXPECT_THAT(behind->ReadAvailable(new std::vector<Record>, 10),
              StatusIs(StatusCode::kDataLoss, HasSubstr("trimmed")));
}

// Someone cut the segment below what the reader had read: reported, never a
// wait for bytes that will not come.
TEST_F(DirChannelTest, SegmentTruncatedBehindTheReaderIsDataLoss) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "0123456789")}), IsOk());
  auto r = Reader(0);
  EXPECT_EQ(ReadAll(*r), "0123456789");
  std::filesystem::resize_file(SegPath(1), 40);
  EXPECT_THAT(r->ReadAvailable(new std::vector<Record>, 10),
              StatusIs(StatusCode::kDataLoss, HasSubstr("truncated to 40")));
}

TEST_F(DirChannelTest, TrimAfterReopenScansOldSegments) {
  WriterOptions o;
  o.segment_bytes = 150;
  {
    auto w = Writer(o);
    for (int i = 0; i < 3; ++i) {
      ASSERT_THAT(w->Append({DataRecord(i * 10, std::string(10, 'x'))}),
                  IsOk());
    }
  }
  auto w = Writer(o);
  ASSERT_THAT(w->TrimBelow(15), IsOk());
  EXPECT_FALSE(std::filesystem::exists(SegPath(1)));
  EXPECT_TRUE(std::filesystem::exists(SegPath(2)));
}

TEST_F(DirChannelTest, SecondWriterIsRefused) {
  auto w = Writer();
  EXPECT_THAT(volume_->OpenWriter("ch", {}),
              StatusIs(StatusCode::kFailedPrecondition,
                       HasSubstr("already has a writer")));
  ASSERT_THAT(w->Close(), IsOk());
  EXPECT_THAT(volume_->OpenWriter("ch", {}), IsOk());
}

TEST_F(DirChannelTest, RestartedWriterContinuesAfterLastRecord) {
  {
    auto w = Writer();
    ASSERT_THAT(w->Append({DataRecord(0, "one"), DataRecord(3, "two")}),
                IsOk());
  }
  auto w = Writer();
  ASSERT_TRUE(w->last_record().has_value());
  EXPECT_EQ(w->last_record()->stream_offset, 3u);
  EXPECT_EQ(w->end_offset(), 6u);
  EXPECT_TRUE(w->recovery_notes().empty());
  ASSERT_THAT(w->Append({DataRecord(6, "three")}), IsOk());
  EXPECT_EQ(ReadAll(*Reader()), "one|two|three");
}

TEST_F(DirChannelTest, DecreasingOffsetsAndBadNamesAreInvalidArgument) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(10, "a")}), IsOk());
  EXPECT_THAT(
      w->Append({DataRecord(9, "b")}),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("below previous")));
  EXPECT_THAT(w->Append({DataRecord(10, "c"), DataRecord(10, "")}), IsOk());
  EXPECT_THAT(volume_->OpenWriter("Bad/Name", {}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(volume_->OpenReader(std::string(129, 'a'), 0),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("1..128")));
}

TEST_F(DirChannelTest, ControlRecordsAtFromOffsetAreDelivered) {
  auto w = Writer();
  ASSERT_THAT(
      w->Append({DataRecord(0, "abcd"), DataRecord(4, "", RecordType::kAck),
                 DataRecord(4, "ef")}),
      IsOk());
  std::vector<Record> out;
  ASSERT_THAT(Reader(4)->ReadAvailable(&out, 1000), IsOk());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].header.type, RecordType::kAck);
  EXPECT_EQ(out[1].payload, "ef");
}

TEST_F(DirChannelTest, ReaderOfARemovedChannelFailsInsteadOfWaiting) {
  {
    auto w = Writer();
    ASSERT_THAT(w->Append({DataRecord(0, "old")}), IsOk());
  }
  auto r = Reader();
  EXPECT_EQ(ReadAll(*r), "old");
  ASSERT_THAT(volume_->RemoveChannel("ch"), IsOk());
  auto w = Writer();  // a new connection's channel of the same name
  ASSERT_THAT(w->Append({DataRecord(0, "new")}), IsOk());
  std::vector<Record> out;
  EXPECT_THAT(
      r->ReadAvailable(&out, 100),
      StatusIs(StatusCode::kNotFound, HasSubstr("deleted while being read")));
  EXPECT_EQ(ReadAll(*Reader()), "new");
}

TEST_F(DirChannelTest, RemoveChannelRefusesLiveWriter) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  EXPECT_THAT(
      volume_->RemoveChannel("ch"),
      StatusIs(StatusCode::kFailedPrecondition, HasSubstr("live writer")));
  w.reset();
  EXPECT_THAT(volume_->ListChannels(), IsOk());
  EXPECT_EQ(*volume_->ListChannels(), std::vector<std::string>{"ch"});
  ASSERT_THAT(volume_->RemoveChannel("ch"), IsOk());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/channels/ch"));
  EXPECT_THAT(volume_->RemoveChannel("ch"), IsOk());
}

}  // namespace
}  // namespace diskwire::storage
