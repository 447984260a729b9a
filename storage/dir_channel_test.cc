// Channel writer and reader of the directory backend: batching, rotation,
// trimming, crash recovery, corruption and injected filesystem faults.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_layout.h"
#include "storage/dir_volume.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;
using ::testing::HasSubstr;

class DirChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(""); }

  void Reopen(std::string key) {
    DirVolumeOptions o;
    o.node = "test-node";
    o.mac_key = std::move(key);
    o.file_ops = &faults_;
    ASSERT_OK_AND_ASSIGN(volume_, OpenDirVolume(dir_.path(), o));
  }
  std::unique_ptr<ChannelWriter> Writer(WriterOptions o = {}) {
    absl::StatusOr<std::unique_ptr<ChannelWriter>> w =
        volume_->OpenWriter("ch", o);
    EXPECT_THAT(w, IsOk());
    return w.ok() ? *std::move(w) : nullptr;
  }
  std::unique_ptr<ChannelReader> Reader(uint64_t from = 0) {
    return *volume_->OpenReader("ch", from);
  }
  // Payloads of everything the reader has now, joined by '|'.
  std::string ReadAll(ChannelReader& r) {
    std::vector<Record> out;
    absl::StatusOr<size_t> n = r.ReadAvailable(&out, 1 << 20);
    if (!n.ok()) return "error: " + n.status().ToString();
    std::string s;
    for (const Record& rec : out) s += (s.empty() ? "" : "|") + rec.payload;
    return s;
  }
  std::string SegPath(uint64_t index) {
    return dir_.path() + "/channels/ch/" + SegmentFileName(index);
  }

  ScratchDir dir_;
  FaultInjectingFileOps faults_{FileOps::Default()};
  std::unique_ptr<Volume> volume_;
};

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

TEST_F(DirChannelTest, TornTailIsWaitedOnThenDiscardedOnRecovery) {
  std::string torn;
  {
    auto w = Writer();
    ASSERT_THAT(w->Append({DataRecord(0, "kept")}), IsOk());
    ASSERT_THAT(w->Append({DataRecord(4, "torn-record")}), IsOk());
    const std::string seg = ReadFileBytes(SegPath(1));
    WriteFileBytes(SegPath(1), seg.substr(0, seg.size() - 5));  // crash
  }
  auto r = Reader();
  EXPECT_EQ(ReadAll(*r), "kept");
  EXPECT_EQ(ReadAll(*r), "");  // waits: the tail may still be written
  auto w = Writer();
  EXPECT_EQ(w->last_record()->stream_offset, 0u);
  ASSERT_EQ(w->recovery_notes().size(), 1u);
  EXPECT_THAT(w->recovery_notes()[0], HasSubstr("torn tail"));
  ASSERT_THAT(w->Append({DataRecord(4, "again")}), IsOk());
  EXPECT_EQ(ReadAll(*r), "again");
}

TEST_F(DirChannelTest, UncommittedBatchIsNeverDelivered) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a"), DataRecord(1, "b")}), IsOk());
  // Cut the commit record of the batch: "a" alone must not be delivered.
  const std::string seg = ReadFileBytes(SegPath(1));
  WriteFileBytes(SegPath(1), seg.substr(0, seg.size() - 3));
  EXPECT_EQ(ReadAll(*Reader()), "");
}

TEST_F(DirChannelTest, ZeroFilledTailIsPending) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  AppendFileBytes(SegPath(1), std::string(4096, '\0'));
  EXPECT_EQ(ReadAll(*Reader()), "a");
}

TEST_F(DirChannelTest, CorruptRecordInTheMiddleIsDataLossNamingFileAndOffset) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "first")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(5, "second")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(11, "third")}), IsOk());
  std::string seg = ReadFileBytes(SegPath(1));
  const size_t second = kSegmentHeaderSize + kRecordHeaderSize + 5;
  seg[second + kRecordHeaderSize + 1] ^= 0x10;  // a payload byte of "second"
  WriteFileBytes(SegPath(1), seg);
  auto r = Reader();
  std::vector<Record> out;
  EXPECT_THAT(
      r->ReadAvailable(&out, 1 << 20),
      StatusIs(StatusCode::kDataLoss,
               HasSubstr(SegPath(1) + " offset " + std::to_string(second) +
                         ": record checksum")));
  ASSERT_EQ(out.size(), 1u);  // "first" only; never "second"
  EXPECT_EQ(out[0].payload, "first");
  EXPECT_THAT(r->ReadAvailable(&out, 1), StatusIs(StatusCode::kDataLoss));
  w.reset();
  EXPECT_THAT(volume_->OpenWriter("ch", {}),
              StatusIs(StatusCode::kDataLoss, HasSubstr("before the tail")));
}

TEST_F(DirChannelTest, LastRecordFailingChecksumWaitsUntilSomethingFollows) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  ASSERT_THAT(w->Append({DataRecord(1, "bcd")}), IsOk());
  std::string seg = ReadFileBytes(SegPath(1));
  seg.back() ^= 1;  // last byte of "bcd": maybe a write still in flight
  WriteFileBytes(SegPath(1), seg);
  auto r = Reader();
  EXPECT_EQ(ReadAll(*r), "a");
  EXPECT_EQ(ReadAll(*r), "");
  ASSERT_THAT(w->Append({DataRecord(4, "e")}), IsOk());
  EXPECT_THAT(ReadAll(*r), HasSubstr("checksum mismatch"));
}

TEST_F(DirChannelTest, WriterInAnotherProcessIsRefused) {
  auto w = Writer();
  const pid_t child = fork();
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<ChannelWriter>> second =
        volume_->OpenWriter("ch", {});
    _exit(absl::IsFailedPrecondition(second.status()) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(DirChannelTest, ForeignBytesAppendedAreDataLoss) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  AppendFileBytes(SegPath(1), "GARBAGE THAT IS NOT A RECORD AT ALL.........");
  EXPECT_THAT(ReadAll(*Reader()), HasSubstr("DATA_LOSS"));
}

TEST_F(DirChannelTest, ForeignSegmentFileIsDataLoss) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  WriteFileBytes(SegPath(1), "#!/bin/sh\necho this is not a segment\n");
  EXPECT_THAT(ReadAll(*Reader()), HasSubstr("not a diskwire segment"));
  w.reset();
  EXPECT_THAT(volume_->OpenWriter("ch", {}),
              StatusIs(StatusCode::kDataLoss, HasSubstr(SegPath(1))));
}

TEST_F(DirChannelTest, NewerSegmentVersionIsFailedPrecondition) {
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "a")}), IsOk());
  std::string seg = ReadFileBytes(SegPath(1));
  seg[4] = 9;
  WriteFileBytes(SegPath(1), seg);
  EXPECT_THAT(ReadAll(*Reader()), HasSubstr("version 9"));
}

TEST_F(DirChannelTest, ForeignFileInChannelIsNotedNotFatal) {
  { ASSERT_THAT(Writer()->Append({DataRecord(0, "a")}), IsOk()); }
  WriteFileBytes(dir_.path() + "/channels/ch/notes.txt", "hello");
  auto w = Writer();
  ASSERT_EQ(w->recovery_notes().size(), 1u);
  EXPECT_THAT(w->recovery_notes()[0], HasSubstr("foreign file"));
  EXPECT_EQ(ReadAll(*Reader()), "a");
}

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

TEST_F(DirChannelTest, AuthenticatedVolumeRejectsUnauthenticatedRecords) {
  {
    auto w = Writer();
    ASSERT_THAT(w->Append({DataRecord(0, "plain"), DataRecord(5, "text")}),
                IsOk());
  }
  Reopen(std::string(kMacKeySize, 'K'));
  std::vector<Record> out;
  EXPECT_THAT(Reader()->ReadAvailable(&out, 100),
              StatusIs(StatusCode::kDataLoss, HasSubstr("no MAC")));
  EXPECT_TRUE(out.empty());
}

TEST_F(DirChannelTest, AuthenticatedRoundTripAndWrongKey) {
  Reopen(std::string(kMacKeySize, 'K'));
  auto w = Writer();
  ASSERT_THAT(w->Append({DataRecord(0, "secret"),
                         DataRecord(6, std::string(600, 's'))}),
              IsOk());
  EXPECT_EQ(ReadAll(*Reader()).substr(0, 7), "secret|");
  Reopen(std::string(kMacKeySize, 'X'));
  EXPECT_THAT(ReadAll(*Reader()), HasSubstr("MAC mismatch"));
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
  EXPECT_THAT(ReadAll(*r), HasSubstr("deleted while being read"));
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
