#include "storage/batch_encoder.h"

#include <fcntl.h>

#include <cerrno>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/record_codec.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

std::string Join(const std::vector<iovec>& iov) {
  std::string s;
  for (const iovec& v : iov)
    s.append(static_cast<char*>(v.iov_base), v.iov_len);
  return s;
}

// What the batch must be: each record encoded alone, the last committed.
std::string Expected(const std::vector<Record>& records, absl::string_view key,
                     uint64_t now) {
  std::string s;
  for (size_t i = 0; i < records.size(); ++i) {
    RecordHeader h = records[i].header;
    if (h.timestamp_ns == 0) h.timestamp_ns = now;
    AppendEncodedRecord(h, records[i].payload, i + 1 == records.size(), key,
                        &s);
  }
  return s;
}

class BatchEncoderTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::vector<Record> Mixed() {
    std::vector<Record> v;
    for (size_t len : std::vector<size_t>{0, 1, kInlinePayload,
                                          kInlinePayload + 1, 5000, 3, 0}) {
      v.push_back(
          DataRecord(v.size() * 10000, std::string(len, 'a' + v.size())));
    }
    v[2].header.timestamp_ns = 0;
    return v;
  }
};

TEST_P(BatchEncoderTest, MatchesRecordByRecordEncoding) {
  const std::vector<Record> records = Mixed();
  BatchEncoder enc;
  enc.Encode(records, GetParam(), 777);
  EXPECT_EQ(Join(enc.iovecs()), Expected(records, GetParam(), 777));
  EXPECT_EQ(enc.bytes(), Expected(records, GetParam(), 777).size());
  // Large payloads are referenced, not copied; small runs are merged.
  EXPECT_LT(enc.iovecs().size(), records.size() * 2);
}

TEST_P(BatchEncoderTest, ReuseKeepsNoStaleState) {
  BatchEncoder enc;
  enc.Encode(Mixed(), GetParam(), 1);
  const std::vector<Record> one = {DataRecord(5, "x")};
  enc.Encode(one, GetParam(), 1);
  EXPECT_EQ(Join(enc.iovecs()), Expected(one, GetParam(), 1));
}

INSTANTIATE_TEST_SUITE_P(Keys, BatchEncoderTest,
                         ::testing::Values("", std::string(kMacKeySize, 'k')),
                         [](const auto& info) {
                           return info.param.empty() ? "NoMac" : "Mac";
                         });

TEST(WriteIovecs, ContinuesAfterShortWritesAndSpansIovMax) {
  ScratchDir dir;
  FaultInjectingFileOps ops(FileOps::Default());
  const std::string path = dir.path() + "/f";
  const int fd = *ops.Open(path, O_WRONLY | O_CREAT, 0644);
  std::vector<std::string> parts;
  for (int i = 0; i < 2000; ++i)
    parts.push_back(std::string(1 + i % 7, 'a' + i % 26));
  std::vector<iovec> iov;
  std::string want;
  for (std::string& p : parts) {
    iov.push_back({p.data(), p.size()});
    want += p;
  }
  ops.ShortWriteNext(3);
  ops.ShortWriteNext(1000);
  ASSERT_THAT(WriteIovecs(ops, fd, iov), IsOk());
  ASSERT_THAT(ops.Close(fd), IsOk());
  EXPECT_EQ(ReadFileBytes(path), want);
  EXPECT_GE(ops.Calls(FileOp::kWrite), 4);  // 2 short + 2 for > IOV_MAX
}

TEST(WriteIovecs, ReportsTheError) {
  ScratchDir dir;
  FaultInjectingFileOps ops(FileOps::Default());
  const int fd = *ops.Open(dir.path() + "/f", O_WRONLY | O_CREAT, 0644);
  std::string data = "abc";
  std::vector<iovec> iov = {{data.data(), data.size()}};
  ops.FailNext(FileOp::kWrite, ENOSPC);
  EXPECT_THAT(WriteIovecs(ops, fd, iov),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_THAT(ops.Close(fd), IsOk());
}

}  // namespace
}  // namespace diskwire::storage
