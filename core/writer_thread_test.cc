// The writer thread with the real clock: wake-ups (high-water mark, deadline),
// no spinning when idle, backpressure through a small buffer, retries, and
// the real directory-backed storage channel end to end.

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "core/writer.h"
#include "core/writer_fake_sink.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"

namespace diskwire {
namespace {

using storage::Record;
using storage::RecordType;

constexpr storage::SessionId kSession = {7, 9};
constexpr absl::Duration kPatience = absl::Seconds(10);

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Threads of this process, from /proc/self/task.
int ThreadCount() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

class WriterThreadTest : public ::testing::Test {
 protected:
  void StartWith(WriterOptions o) {
    writer_ = std::make_unique<Writer>(RealClock::Get(), o);
    channel_ = writer_->AddChannel(kSession, storage::kClientToServer, &sink_);
    writer_->Start();
  }
  void TearDown() override { writer_.reset(); }

  FakeSink sink_;  // Declared first: outlives the writer.
  std::unique_ptr<Writer> writer_;
  std::shared_ptr<OutboundChannel> channel_;
};

TEST_F(WriterThreadTest, HighWaterMarkWakesTheThreadAtOnce) {
  WriterOptions o;
  o.high_water_bytes = 4096;
  o.flush_delay_ns = 3600 * kNsPerSec;  // Only the mark can trigger a write.
  StartWith(o);
  ASSERT_THAT(channel_->TrySubmitData(0, std::string(4095, 'a')), IsOk());
  ASSERT_THAT(channel_->TrySubmitData(4095, "b"), IsOk());
  ASSERT_TRUE(sink_.AwaitDataBytes(4096, kPatience));
  EXPECT_EQ(sink_.calls(), 1);
}

TEST_F(WriterThreadTest, DeadlineFlushesWithoutMoreData) {
  WriterOptions o;
  o.flush_delay_ns = 1 * kNsPerMs;
  StartWith(o);
  ASSERT_THAT(channel_->TrySubmitData(0, "tiny"), IsOk());
  ASSERT_THAT(channel_->AwaitIdle(kPatience), IsOk());
  EXPECT_EQ(sink_.data(), "tiny");
}

TEST_F(WriterThreadTest, IdleThreadSleeps) {
  StartWith(WriterOptions());
  ASSERT_THAT(channel_->TrySubmitData(0, "x"), IsOk());
  ASSERT_THAT(channel_->AwaitIdle(kPatience), IsOk());
  const uint64_t passes = writer_->passes();
  absl::SleepFor(absl::Milliseconds(50));  // An observation window.
  EXPECT_LE(writer_->passes(), passes + 1) << "the idle writer is polling";
}

TEST_F(WriterThreadTest, OneThreadWhateverTheNumberOfChannels) {
  StartWith(WriterOptions());
  const int threads = ThreadCount();
  std::vector<std::unique_ptr<FakeSink>> sinks;
  std::vector<std::shared_ptr<OutboundChannel>> channels;
  for (int i = 0; i < 200; ++i) {
    sinks.push_back(std::make_unique<FakeSink>());
    channels.push_back(writer_->AddChannel({1, static_cast<uint64_t>(i)},
                                           storage::kClientToServer,
                                           sinks.back().get()));
    ASSERT_THAT(channels.back()->TrySubmitData(0, "hello"), IsOk());
  }
  for (auto& c : channels) ASSERT_THAT(c->AwaitIdle(kPatience), IsOk());
  EXPECT_EQ(ThreadCount(), threads);
  for (auto& s : sinks) EXPECT_EQ(s->data(), "hello");
  for (auto& c : channels) writer_->RemoveChannel(c);
}

// What the engine's housekeeping does: Supervise() until `done`.
bool SuperviseUntil(Writer* writer, const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + kPatience;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    writer->Supervise();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST_F(WriterThreadTest, AHungAppendHoldsOnlyItsOwnChannel) {
  WriterOptions o;
  o.stall_ns = 50 * kNsPerMs;
  StartWith(o);
  FakeSink other_sink;
  auto other =
      writer_->AddChannel({1, 2}, storage::kClientToServer, &other_sink);
  sink_.HangNextAppend();
  ASSERT_THAT(channel_->TrySubmitData(0, "stuck"), IsOk());
  ASSERT_TRUE(sink_.AwaitHanging(kPatience));
  ASSERT_THAT(other->TrySubmitData(0, "moves"), IsOk());

  ASSERT_TRUE(SuperviseUntil(writer_.get(), [&] {
    return other_sink.AwaitDataBytes(5, absl::ZeroDuration());
  })) << "the other channel waits for the hung append";
  EXPECT_EQ(other_sink.data(), "moves");
  EXPECT_EQ(writer_->threads(), 2);
  EXPECT_TRUE(absl::IsDeadlineExceeded(channel_->status()))
      << channel_->status();
  EXPECT_THAT(other->status(), IsOk());

  sink_.Release();
  ASSERT_THAT(channel_->AwaitIdle(kPatience), IsOk());
  EXPECT_EQ(sink_.data(), "stuck");
  EXPECT_THAT(channel_->status(), IsOk());
  ASSERT_TRUE(
      SuperviseUntil(writer_.get(), [&] { return writer_->threads() == 1; }))
      << "the spare thread stays after the stall: " << writer_->threads();
  ASSERT_THAT(other->TrySubmitData(5, " on"), IsOk());
  ASSERT_THAT(other->AwaitIdle(kPatience), IsOk());
  EXPECT_EQ(other_sink.data(), "moves on");
  writer_->RemoveChannel(other);
}

TEST_F(WriterThreadTest, StalledAppendsGetAtMostMaxThreads) {
  WriterOptions o;
  o.stall_ns = 20 * kNsPerMs;
  o.max_threads = 3;
  StartWith(o);
  std::vector<std::unique_ptr<FakeSink>> sinks;
  std::vector<std::shared_ptr<OutboundChannel>> channels;
  for (int i = 0; i < 5; ++i) {
    sinks.push_back(std::make_unique<FakeSink>());
    sinks.back()->HangNextAppend();
    channels.push_back(writer_->AddChannel({3, static_cast<uint64_t>(i)},
                                           storage::kClientToServer,
                                           sinks.back().get()));
    ASSERT_THAT(channels.back()->TrySubmitData(0, "x"), IsOk());
  }
  auto hanging = [&] {
    int n = 0;
    for (auto& s : sinks) n += s->AwaitHanging(absl::ZeroDuration());
    return n;
  };
  ASSERT_TRUE(SuperviseUntil(writer_.get(), [&] { return hanging() == 3; }));
  for (int i = 0; i < 20; ++i) writer_->Supervise();
  EXPECT_EQ(writer_->threads(), 3);
  EXPECT_EQ(hanging(), 3);
  // Each sink hangs once: the two left hang in turn once threads are free.
  ASSERT_TRUE(SuperviseUntil(writer_.get(), [&] {
    for (auto& s : sinks) s->Release();
    for (auto& s : sinks) {
      if (s->data() != "x") return false;
    }
    return true;
  }));
  for (auto& c : channels) writer_->RemoveChannel(c);
}

TEST_F(WriterThreadTest, BlockingSubmitStreamsThroughASmallBuffer) {
  WriterOptions o;
  o.buffer_bytes = 4096;
  o.high_water_bytes = 1024;
  o.max_record_payload = 1000;
  StartWith(o);
  const std::string input = RandomBytes(1 << 20, 1);
  for (size_t at = 0; at < input.size(); at += 10000) {
    ASSERT_THAT(
        channel_->SubmitData(at, absl::string_view(input).substr(at, 10000)),
        IsOk());
  }
  ASSERT_THAT(channel_->AwaitIdle(kPatience), IsOk());
  EXPECT_TRUE(sink_.data() == input);
  EXPECT_EQ(channel_->appended_offset(), input.size());
}

TEST_F(WriterThreadTest, StorageErrorsAreRetriedUntilTheDataIsWritten) {
  WriterOptions o;
  o.retry_min_ns = 100 * kNsPerUs;
  StartWith(o);
  sink_.FailNext(absl::ResourceExhaustedError("ENOSPC"));
  sink_.FailNext(absl::ResourceExhaustedError("ENOSPC"));
  sink_.FailNext(absl::UnavailableError("EIO"));
  ASSERT_THAT(channel_->SubmitControl(RecordType::kHello, 0), IsOk());
  ASSERT_THAT(channel_->SubmitData(0, "survives"), IsOk());
  ASSERT_THAT(channel_->AwaitIdle(kPatience), IsOk());
  EXPECT_EQ(sink_.data(), "survives");
  EXPECT_EQ(channel_->stats().failed_appends, 3u);
  EXPECT_THAT(channel_->status(), IsOk());
}

TEST_F(WriterThreadTest, AwaitIdleReportsTheStorageError) {
  WriterOptions o;
  o.retry_min_ns = o.retry_max_ns = 3600 * kNsPerSec;
  StartWith(o);
  sink_.FailNext(absl::ResourceExhaustedError("No space left on device"));
  ASSERT_THAT(channel_->SubmitControl(RecordType::kFin, 0), IsOk());
  EXPECT_THAT(channel_->AwaitIdle(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       testing::HasSubstr("No space left on device")));
}

// The real storage channel: what the writer appends is what a reader of the
// directory volume reads back, in order.
TEST(WriterWithDirVolumeTest, RecordsReachTheRealChannelInOrder) {
  std::string root =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
      "/vol-XXXXXX";
  ASSERT_NE(mkdtemp(root.data()), nullptr);
  ASSERT_OK_AND_ASSIGN(auto volume, storage::OpenDirVolume(root, {}));
  ASSERT_OK_AND_ASSIGN(auto channel_writer,
                       volume->OpenWriter("session-1", {}));

  const std::string input = RandomBytes(300000, 2);
  {
    Writer writer(RealClock::Get(), WriterOptions());
    auto out = writer.AddChannel(kSession, storage::kServerToClient,
                                 channel_writer.get());
    writer.Start();
    ASSERT_THAT(out->SubmitControl(RecordType::kHello, 0, "hello"), IsOk());
    for (size_t at = 0; at < input.size(); at += 7000) {
      ASSERT_THAT(
          out->SubmitData(at, absl::string_view(input).substr(at, 7000)),
          IsOk());
      out->SubmitAck(at / 7000);
    }
    ASSERT_THAT(out->SubmitControl(RecordType::kFin, input.size()), IsOk());
    ASSERT_THAT(out->AwaitIdle(kPatience), IsOk());
    writer.RemoveChannel(out);
  }

  ASSERT_OK_AND_ASSIGN(auto reader, volume->OpenReader("session-1", 0));
  std::vector<Record> records;
  ASSERT_OK_AND_ASSIGN(size_t n, reader->ReadAvailable(&records, 1 << 30));
  ASSERT_GT(n, 2u);
  for (int i = 0; i < 100; ++i) {  // ReadAvailable may return it in parts.
    ASSERT_OK_AND_ASSIGN(n, reader->ReadAvailable(&records, 1 << 30));
    if (n == 0) break;
  }
  EXPECT_EQ(records.front().header.type, RecordType::kHello);
  EXPECT_EQ(records.front().payload, "hello");
  EXPECT_EQ(records.back().header.type, RecordType::kFin);
  EXPECT_EQ(records.back().header.stream_offset, input.size());
  std::string data;
  uint64_t last_ack = 0;
  for (const Record& r : records) {
    EXPECT_EQ(r.header.session_id, kSession);
    EXPECT_EQ(r.header.direction, storage::kServerToClient);
    EXPECT_GE(r.header.ack_offset, last_ack);
    last_ack = r.header.ack_offset;
    if (r.header.type != RecordType::kData) continue;
    EXPECT_EQ(r.header.stream_offset, data.size());
    data += r.payload;
  }
  EXPECT_TRUE(data == input);
  EXPECT_EQ(records.back().header.ack_offset, (input.size() - 1) / 7000);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace diskwire
