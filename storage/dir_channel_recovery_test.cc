// Crash recovery, corruption, foreign files, authentication and the
// one-writer rule of the directory backend's channels.

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "storage/dir_channel_test_fixture.h"

namespace diskwire::storage {
namespace {

using absl::StatusCode;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace diskwire::storage
