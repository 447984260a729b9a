// `diskwire mirror`: flag parsing in-process, and the binary end to end
// (--once on two scratch volumes, a corrupt channel's exit status).

#include "cli/mirror_command.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/dir_layout.h"
#include "storage/dir_volume.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

using ::testing::HasSubstr;
using Args = std::vector<std::string>;

TEST(ParseMirrorArgsTest, ContinuousByDefault) {
  ASSERT_OK_AND_ASSIGN(
      MirrorPlan plan,
      ParseMirrorArgs(Args{"--from", "/a", "--to", "/b", "--durability",
                           "batch", "--max-lag-ms", "250", "--name", "east"}));
  EXPECT_EQ(plan.mode, MirrorMode::kContinuous);
  EXPECT_EQ(plan.options.durability, storage::Durability::kEveryBatch);
  EXPECT_EQ(plan.options.max_lag, absl::Milliseconds(250));
  EXPECT_EQ(plan.options.name, "east");
}

TEST(ParseMirrorArgsTest, OnceAndOnRequest) {
  ASSERT_OK_AND_ASSIGN(MirrorPlan once,
                       ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--once"}));
  EXPECT_EQ(once.mode, MirrorMode::kOnce);
  ASSERT_OK_AND_ASSIGN(
      MirrorPlan req,
      ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--on-request"}));
  EXPECT_EQ(req.mode, MirrorMode::kOnRequest);
  EXPECT_THAT(
      ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--once", "--on-request"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("exclude each other")));
}

TEST(ParseMirrorArgsTest, ARequestNeedsOnlyTheSource) {
  ASSERT_OK_AND_ASSIGN(
      MirrorPlan r,
      ParseMirrorArgs(Args{"--request", "--from=/dev/sdb", "--name=ab",
                           "--request-id=nightly", "--timeout-ms=5000"}));
  EXPECT_EQ(r.mode, MirrorMode::kRequest);
  EXPECT_EQ(r.from, "/dev/sdb");
  EXPECT_EQ(r.options.name, "ab");
  EXPECT_EQ(r.request_id, "nightly");
  EXPECT_EQ(r.request_timeout, absl::Seconds(5));
  ASSERT_OK_AND_ASSIGN(MirrorPlan d,
                       ParseMirrorArgs(Args{"--request", "--from=/a"}));
  EXPECT_EQ(d.options.name, "default");
  EXPECT_FALSE(d.request_id.empty()) << "a fresh id when none is given";
  EXPECT_THAT(
      ParseMirrorArgs(Args{"--request", "--from=/a", "--to=/b"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no --to")));
  EXPECT_THAT(ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--timeout-ms=5"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("go with --request")));
}

TEST(ParseMirrorArgsTest, MistakesNameTheFlag) {
  EXPECT_THAT(ParseMirrorArgs(Args{"--to=/b"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--from SEND and --to RECV are required")));
  EXPECT_THAT(
      ParseMirrorArgs(Args{"--from=/a", "--to=/a"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("same volume")));
  EXPECT_THAT(
      ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--durability=often"}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--durability: \"often\"")));
  EXPECT_THAT(ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--max-lag-ms=-3"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--max-lag-ms: \"-3\" is not a number")));
  EXPECT_THAT(
      ParseMirrorArgs(Args{"--from=/a", "--to=/b", "--key-file=/nonexistent"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--key-file")));
}

class MirrorBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = absl::StrCat(std::getenv("TEST_SRCDIR"), "/",
                           std::getenv("TEST_WORKSPACE"), "/cli/diskwire");
    source_ = *storage::OpenDirVolume(from_.path(), {});
  }
  // Runs the binary; returns the exit status, output in `*out` (both
  // streams).
  int Run(const std::string& args, std::string* out) {
    FILE* p = popen(absl::StrCat(binary_, " ", args, " 2>&1").c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out->append(buf, n);
    const int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void Write(const std::string& channel, int records) {
    auto w = *source_->OpenWriter(channel, {});
    for (int i = 0; i < records; ++i) {
      ASSERT_THAT(w->Append({storage::DataRecord(i, "x")}), IsOk());
    }
  }

  std::string binary_;
  storage::ScratchDir from_, to_;
  std::unique_ptr<storage::Volume> source_;
};

TEST_F(MirrorBinaryTest, OnceCopiesAndWritesTheStatusFile) {
  Write("a", 3);
  std::string out;
  EXPECT_EQ(Run(absl::StrCat("mirror --once --from ", from_.path(), " --to ",
                             to_.path()),
                &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("copied 3 records, 3 bytes"));
  auto target = *storage::OpenDirVolume(to_.path(), {});
  auto reader = *target->OpenReader("a", 0);
  std::vector<storage::Record> got;
  ASSERT_THAT(reader->ReadAvailable(&got, 1 << 20), IsOk());
  EXPECT_EQ(got.size(), 3u);
  EXPECT_THAT(storage::ReadFileBytes(to_.path() + "/mirror/default.status"),
              HasSubstr("channel a lag_ms"));
}

TEST_F(MirrorBinaryTest, CorruptChannelExitsOneNamingTheFile) {
  Write("a", 2);
  const std::string seg =
      from_.path() + "/channels/a/" + storage::SegmentFileName(1);
  std::string bytes = storage::ReadFileBytes(seg);
  bytes[32 + 1] ^= 1;  // the first record's magic
  storage::WriteFileBytes(seg, bytes);
  std::string out;
  EXPECT_EQ(Run(absl::StrCat("mirror --once --from ", from_.path(), " --to ",
                             to_.path()),
                &out),
            1);
  EXPECT_THAT(out, HasSubstr(seg + " offset 32"));
}

TEST_F(MirrorBinaryTest, UsageErrorExitsTwo) {
  std::string out;
  EXPECT_EQ(Run("mirror --from /x", &out), 2);
  EXPECT_THAT(out, HasSubstr("diskwire mirror: --from SEND and --to RECV"));
}

}  // namespace
}  // namespace diskwire
