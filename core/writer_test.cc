// The writer's flush policy, ordering and retries, driven with a FakeClock
// and RunOnce() (no thread).

#include "core/writer.h"

#include <string>

#include "base/status_matchers.h"
#include "core/fake_clock.h"
#include "core/writer_fake_sink.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::absl::StatusCode;
using storage::Record;
using storage::RecordType;

constexpr storage::SessionId kSession = {0x1111, 0x2222};

class WriterTest : public ::testing::Test {
 protected:
  static WriterOptions SmallOptions() {
    WriterOptions o;
    o.buffer_bytes = 1000;
    o.high_water_bytes = 600;
    o.max_record_payload = 256;
    o.flush_delay_ns = 200 * kNsPerUs;
    o.retry_min_ns = 1 * kNsPerMs;
    o.retry_max_ns = 4 * kNsPerMs;
    return o;
  }
  void SetUp() override {
    channel_ = writer_.AddChannel(kSession, storage::kServerToClient, &sink_);
  }
  // Submits `bytes` at the channel's current end of DATA.
  void Send(const std::string& bytes) {
    ASSERT_OK_AND_ASSIGN(size_t n, channel_->TrySubmitData(next_, bytes));
    ASSERT_EQ(n, bytes.size());
    next_ += n;
  }
  // Types of the records of batch `i`.
  std::vector<RecordType> Types(size_t i) const {
    std::vector<RecordType> out;
    const auto batches = sink_.batches();
    for (const Record& r : batches.at(i)) out.push_back(r.header.type);
    return out;
  }

  FakeClock clock_{/*start_ns=*/1 * kNsPerSec};
  FakeSink sink_;
  Writer writer_{&clock_, SmallOptions()};
  std::shared_ptr<OutboundChannel> channel_;
  uint64_t next_ = 0;
};

TEST_F(WriterTest, IdleWritesNothingAndHasNoDeadline) {
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  clock_.AdvanceMs(100);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(WriterTest, FlushDeadlineTriggersTheAppend) {
  const int64_t t0 = clock_.NowNs();
  Send("hello");
  EXPECT_EQ(writer_.RunOnce(), t0 + 200 * kNsPerUs);
  clock_.AdvanceUs(199);
  writer_.RunOnce();
  EXPECT_EQ(sink_.calls(), 0) << "flushed before its deadline";
  clock_.AdvanceUs(1);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  const auto batches = sink_.batches();
  ASSERT_EQ(batches.size(), 1u);
  const Record& r = batches[0][0];
  EXPECT_EQ(r.header.type, RecordType::kData);
  EXPECT_EQ(r.header.stream_offset, 0u);
  EXPECT_EQ(r.payload, "hello");
  EXPECT_EQ(r.header.session_id, kSession);
  EXPECT_EQ(r.header.direction, storage::kServerToClient);
  EXPECT_EQ(channel_->appended_offset(), 5u);
  EXPECT_EQ(channel_->buffered_bytes(), 0u);
}

TEST_F(WriterTest, DeadlineCountsFromTheFirstPendingByte) {
  Send("a");
  clock_.AdvanceUs(150);
  Send("b");  // Does not push the deadline back.
  clock_.AdvanceUs(50);
  writer_.RunOnce();
  EXPECT_EQ(sink_.data(), "ab");
}

TEST_F(WriterTest, IntervalDurabilitySyncsAnIdleChannel) {
  channel_->SetIdleSync(50 * kNsPerMs);
  Send("last batch before a pause");
  clock_.AdvanceUs(200);
  const int64_t appended_at = clock_.NowNs();
  EXPECT_EQ(writer_.RunOnce(), appended_at + 50 * kNsPerMs)
      << "the writer must wake for the sync";
  EXPECT_EQ(sink_.syncs(), 0);
  clock_.AdvanceMs(49);
  writer_.RunOnce();
  EXPECT_EQ(sink_.syncs(), 0) << "synced before the interval";
  clock_.AdvanceMs(1);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  EXPECT_EQ(sink_.syncs(), 1);
  clock_.AdvanceMs(500);
  writer_.RunOnce();
  EXPECT_EQ(sink_.syncs(), 1) << "nothing new to sync";
}

TEST_F(WriterTest, WithoutAnIntervalAnIdleChannelIsNeverSynced) {
  Send("x");
  clock_.AdvanceMs(1);
  writer_.RunOnce();
  clock_.AdvanceMs(1000);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  EXPECT_EQ(sink_.syncs(), 0);
}

TEST(WriterDefaultsTest, ZeroDelayFlushesOnTheNextPass) {
  FakeClock clock;
  FakeSink sink;
  Writer writer(&clock, WriterOptions());  // flush_delay_ns = 0
  auto channel = writer.AddChannel({1, 1}, storage::kClientToServer, &sink);
  EXPECT_EQ(writer.RunOnce(), INT64_MAX);
  ASSERT_THAT(channel->TrySubmitData(0, "now"), IsOk());
  EXPECT_EQ(writer.RunOnce(), INT64_MAX);  // Without advancing the clock.
  EXPECT_EQ(sink.data(), "now");
}

TEST_F(WriterTest, HighWaterMarkTriggersAtOnce) {
  Send(std::string(599, 'x'));
  writer_.RunOnce();
  EXPECT_EQ(sink_.calls(), 0);
  Send("y");  // 600 bytes: at the mark.
  writer_.RunOnce();
  ASSERT_EQ(sink_.calls(), 1);
  EXPECT_EQ(sink_.data(), std::string(599, 'x') + "y");
}

TEST_F(WriterTest, OneAppendPerBatchAndRecordsCappedInSize) {
  Send(std::string(300, 'a'));
  Send(std::string(300, 'b'));
  writer_.RunOnce();
  ASSERT_EQ(sink_.batches().size(), 1u) << "one Append call per batch";
  const auto batch = sink_.batches()[0];
  ASSERT_EQ(batch.size(), 3u);  // 256 + 256 + 88
  EXPECT_EQ(batch[0].header.stream_offset, 0u);
  EXPECT_EQ(batch[1].header.stream_offset, 256u);
  EXPECT_EQ(batch[2].header.stream_offset, 512u);
  EXPECT_EQ(batch[2].payload.size(), 88u);
}

TEST_F(WriterTest, ControlRecordsKeepTheirPlaceAmongData) {
  ASSERT_THAT(channel_->SubmitControl(RecordType::kHello, 0, "hi"), IsOk());
  Send("abc");
  ASSERT_THAT(channel_->SubmitControl(RecordType::kHeartbeat, 3), IsOk());
  Send("def");
  ASSERT_THAT(channel_->SubmitControl(RecordType::kFin, 6), IsOk());
  writer_.RunOnce();  // Control records do not wait for the deadline.
  ASSERT_EQ(sink_.batches().size(), 1u);
  EXPECT_EQ(Types(0),
            (std::vector<RecordType>{RecordType::kHello, RecordType::kData,
                                     RecordType::kHeartbeat, RecordType::kData,
                                     RecordType::kFin}));
  const auto batch = sink_.batches()[0];
  EXPECT_EQ(batch[0].payload, "hi");
  EXPECT_EQ(batch[3].header.stream_offset, 3u);
  EXPECT_EQ(batch[4].header.stream_offset, 6u);
}

TEST_F(WriterTest, AckRidesOnEveryRecord) {
  channel_->SubmitAck(40);
  channel_->SubmitAck(30);  // Older: ignored.
  Send("abc");
  clock_.AdvanceUs(200);
  writer_.RunOnce();
  ASSERT_EQ(sink_.batches().size(), 1u);
  EXPECT_EQ(Types(0), std::vector<RecordType>{RecordType::kData});
  EXPECT_EQ(sink_.batches()[0][0].header.ack_offset, 40u);
  clock_.AdvanceMs(10);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX) << "ack already carried";
}

TEST_F(WriterTest, AckAloneGetsItsOwnRecordAfterTheDeadline) {
  Send("abc");
  clock_.AdvanceUs(200);
  writer_.RunOnce();
  channel_->SubmitAck(7);
  writer_.RunOnce();
  EXPECT_EQ(sink_.batches().size(), 1u) << "ACKs batch like DATA";
  clock_.AdvanceUs(200);
  writer_.RunOnce();
  ASSERT_EQ(sink_.batches().size(), 2u);
  EXPECT_EQ(Types(1), std::vector<RecordType>{RecordType::kAck});
  EXPECT_EQ(sink_.batches()[1][0].header.ack_offset, 7u);
  EXPECT_EQ(sink_.batches()[1][0].header.stream_offset, 3u);
}

TEST_F(WriterTest, BackpressureAcceptsOnlyWhatFitsThenCallsBack) {
  int room_calls = 0;
  channel_->SetRoomCallback([&] { ++room_calls; });
  ASSERT_OK_AND_ASSIGN(size_t n,
                       channel_->TrySubmitData(0, std::string(1500, 'z')));
  EXPECT_EQ(n, 1000u);
  ASSERT_OK_AND_ASSIGN(n, channel_->TrySubmitData(1000, "more"));
  EXPECT_EQ(n, 0u);
  writer_.RunOnce();
  EXPECT_EQ(room_calls, 1);
  ASSERT_OK_AND_ASSIGN(n, channel_->TrySubmitData(1000, "more"));
  EXPECT_EQ(n, 4u);
}

TEST_F(WriterTest, StreamPositionRulesAreEnforced) {
  EXPECT_THAT(channel_->SubmitControl(RecordType::kFailover, 100), IsOk());
  EXPECT_THAT(channel_->TrySubmitData(99, "x"),
              StatusIs(StatusCode::kInvalidArgument,
                       testing::HasSubstr("below the last control")));
  ASSERT_THAT(channel_->TrySubmitData(100, "abc"), IsOk());
  EXPECT_THAT(channel_->TrySubmitData(104, "x"),
              StatusIs(StatusCode::kInvalidArgument,
                       testing::HasSubstr("does not follow offset 103")));
  EXPECT_THAT(channel_->SubmitControl(RecordType::kFin, 102),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(channel_->SubmitControl(RecordType::kData, 103),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(channel_->SubmitControl(RecordType::kAck, 103),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(WriterTest, StorageErrorsAreRetriedWithBackoffAndReported) {
  sink_.FailNext(absl::ResourceExhaustedError("ENOSPC"));
  sink_.FailNext(absl::UnavailableError("EIO"));
  Send("precious");
  clock_.AdvanceUs(200);
  writer_.RunOnce();  // Fails: ENOSPC.
  EXPECT_THAT(channel_->status(),
              StatusIs(StatusCode::kResourceExhausted,
                       testing::HasSubstr("retrying in 1 ms")));
  Send("+more");  // Still accepted meanwhile.
  clock_.AdvanceUs(999);
  writer_.RunOnce();
  EXPECT_EQ(sink_.calls(), 1) << "retried before the backoff";
  clock_.AdvanceUs(1);
  writer_.RunOnce();  // Fails: EIO; backoff doubles.
  EXPECT_THAT(channel_->status(),
              StatusIs(StatusCode::kUnavailable, testing::HasSubstr("2 ms")));
  clock_.AdvanceMs(2);
  writer_.RunOnce();  // The first batch, intact.
  EXPECT_THAT(channel_->status(), IsOk());
  clock_.AdvanceUs(200);
  writer_.RunOnce();  // Then the data that came later.
  EXPECT_EQ(sink_.data(), "precious+more");
  EXPECT_EQ(channel_->stats().failed_appends, 2u);
  EXPECT_EQ(channel_->stats().appends, 2u);
  EXPECT_EQ(channel_->appended_offset(), 13u);
}

// On a full volume the peer's acknowledgements must free space even while
// every append fails: otherwise nothing ever moves again.
TEST_F(WriterTest, TrimsWhileAppendsFail) {
  Send("first");
  clock_.AdvanceUs(200);
  writer_.RunOnce();
  for (int i = 0; i < 3; ++i)
    sink_.FailNext(absl::ResourceExhaustedError("ENOSPC"));
  Send("second");
  channel_->RequestTrim(5);  // the peer has "first"
  clock_.AdvanceUs(200);
  writer_.RunOnce();  // Fails: ENOSPC.
  EXPECT_THAT(channel_->status(), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_EQ(sink_.trimmed_below(), 5u);
}

TEST_F(WriterTest, BackoffIsCapped) {
  for (int i = 0; i < 5; ++i) sink_.FailNext(absl::UnavailableError("EIO"));
  Send("x");
  clock_.AdvanceUs(200);
  for (int i = 0; i < 5; ++i) {
    writer_.RunOnce();
    clock_.AdvanceMs(4);  // retry_max: every attempt is due again.
  }
  EXPECT_EQ(sink_.calls(), 5);
  writer_.RunOnce();
  EXPECT_EQ(sink_.data(), "x");
}

TEST_F(WriterTest, RemovedChannelIsNeverWrittenAgain) {
  Send("abc");
  writer_.RemoveChannel(channel_);
  clock_.AdvanceMs(1);
  EXPECT_EQ(writer_.RunOnce(), INT64_MAX);
  EXPECT_EQ(sink_.calls(), 0);
  EXPECT_THAT(channel_->TrySubmitData(3, "d"),
              StatusIs(StatusCode::kCancelled));
  EXPECT_THAT(channel_->SubmitControl(RecordType::kFin, 3),
              StatusIs(StatusCode::kCancelled));
}

TEST_F(WriterTest, ChannelsAreFlushedIndependently) {
  FakeSink other_sink;
  auto other =
      writer_.AddChannel(kSession, storage::kClientToServer, &other_sink);
  Send("mine");
  clock_.AdvanceUs(100);
  ASSERT_THAT(other->TrySubmitData(0, "theirs"), IsOk());
  clock_.AdvanceUs(100);
  writer_.RunOnce();
  EXPECT_EQ(sink_.data(), "mine");
  EXPECT_EQ(other_sink.calls(), 0);
  clock_.AdvanceUs(100);
  writer_.RunOnce();
  EXPECT_EQ(other_sink.data(), "theirs");
  EXPECT_EQ(other_sink.batches()[0][0].header.direction,
            storage::kClientToServer);
}

}  // namespace
}  // namespace diskwire
