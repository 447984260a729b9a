// Injected filesystem faults (ENOSPC, EIO, short writes, failed fsync) and
// durability of the directory backend's channels.

#include <cerrno>
#include <filesystem>

#include "storage/dir_channel_test_fixture.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;
using ::testing::HasSubstr;

TEST_F(DirChannelTest, EnospcIsResourceExhaustedAndRetryWorks) {
  auto w = Writer();
  auto r = Reader();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  faults_.ShortWriteNext(kRecordHeaderSize + 5);  // part of the batch lands
  faults_.FailNext(FileOp::kWrite, ENOSPC);       // then the disk is full
  EXPECT_THAT(w->Append({DataRecord(1, "bb"), DataRecord(3, "cc")}),
              StatusIs(StatusCode::kResourceExhausted, HasSubstr("space")));
  EXPECT_EQ(ReadAll(*r), "a");
  EXPECT_EQ(std::filesystem::file_size(SegPath(1)),
            kSegmentHeaderSize + kRecordHeaderSize + 1);
  ASSERT_THAT(w->Append({DataRecord(1, "bb"), DataRecord(3, "cc")}), IsOk());
  EXPECT_EQ(ReadAll(*r), "bb|cc");
}

TEST_F(DirChannelTest, EnospcWhileCreatingASegmentLeavesNothingBehind) {
  WriterOptions o;
  o.segment_bytes = 150;
  auto w = Writer(o);
  ASSERT_THAT(w->Append({DataRecord(0, "first")}), IsOk());
  faults_.FailNext(FileOp::kWrite, ENOSPC, 1, "/.tmp-");
  EXPECT_THAT(w->Append({DataRecord(5, "second")}),
              StatusIs(StatusCode::kResourceExhausted, HasSubstr(".tmp-")));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path() +
                                                              "/channels/ch"),
                          std::filesystem::directory_iterator()),
            2);  // LOCK and segment 1 only
  ASSERT_THAT(w->Append({DataRecord(5, "second")}), IsOk());
  EXPECT_EQ(ReadAll(*Reader()), "first|second");
}

TEST_F(DirChannelTest, ShortWritesAreCompleted) {
  auto w = Writer();
  faults_.ShortWriteNext(7);
  faults_.ShortWriteNext(100);
  ASSERT_THAT(w->Append({DataRecord(0, std::string(1000, 'z'))}), IsOk());
  EXPECT_EQ(ReadAll(*Reader()), std::string(1000, 'z'));
}

TEST_F(DirChannelTest, EioIsUnavailable) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "x")}), IsOk());
  faults_.FailNext(FileOp::kWrite, EIO);
  EXPECT_THAT(
      w->Append({DataRecord(0, "a")}),
      StatusIs(StatusCode::kUnavailable, HasSubstr("0000000000000001.seg")));
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
}

TEST_F(DirChannelTest, FailedRollbackBreaksWriterUntilReopen) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "x")}), IsOk());
  faults_.ShortWriteNext(10);
  faults_.FailNext(FileOp::kWrite, EIO);
  faults_.FailNext(FileOp::kTruncate, EIO);
  EXPECT_THAT(w->Append({DataRecord(0, "a")}),
              StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(w->Append({DataRecord(0, "a")}),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("reopen")));
  w.reset();
  auto again = Writer();  // recovery cuts the 10 torn bytes
  EXPECT_EQ(again->recovery_notes().size(), 1u);
  ASSERT_THAT(again->Append({DataRecord(0, "a")}), IsOk());
  EXPECT_EQ(ReadAll(*Reader()), "x|a");
}

TEST_F(DirChannelTest, DurabilityEveryBatchSyncsAndSyncFailureBreaks) {
  WriterOptions o;
  o.durability = Durability::kEveryBatch;
  auto w = Writer(o);
  const int before = faults_.Calls(FileOp::kSync);
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(1, "b")}), IsOk());
  EXPECT_GE(faults_.Calls(FileOp::kSync) - before, 2);
  faults_.FailNext(FileOp::kSync, EIO);
  EXPECT_THAT(w->Append({DataRecord(2, "c")}),
              StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(w->Append({DataRecord(3, "d")}),
              StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(DirChannelTest, DurabilityIntervalSyncsOnlyAfterTheInterval) {
  WriterOptions o;
  o.durability = Durability::kInterval;
  o.sync_interval = absl::Hours(1);
  auto w = Writer(o);
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());  // creates the segment
  const int before = faults_.Calls(FileOp::kSync);
  ASSERT_THAT(w->Append({DataRecord(1, "b")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(2, "b")}), IsOk());
  EXPECT_EQ(faults_.Calls(FileOp::kSync), before);
  w.reset();
  o.sync_interval = absl::ZeroDuration();
  w = Writer(o);
  const int again = faults_.Calls(FileOp::kSync);
  ASSERT_THAT(w->Append({DataRecord(3, "c")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(4, "d")}), IsOk());
  EXPECT_EQ(faults_.Calls(FileOp::kSync) - again, 2);
}

TEST_F(DirChannelTest, DurabilityNoneNeverSyncs) {
  auto w = Writer();
  const int before = faults_.Calls(FileOp::kSync);
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  EXPECT_EQ(faults_.Calls(FileOp::kSync), before);
}

}  // namespace
}  // namespace diskwire::storage
