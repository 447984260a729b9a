#include "core/failover_message.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

FailoverMessage Message(Role role, uint64_t offset, uint64_t delivered,
                        const std::string& from) {
  FailoverMessage m;
  m.session = SessionId{1, 2};
  m.sender_role = role;
  m.failover_offset = offset;
  m.delivered = delivered;
  m.from_process = from;
  return m;
}

TEST(FailoverMessage, RoundTrips) {
  FailoverMessage m = Message(Role::kServer, 4096, 77, "hostb.123.456");
  m.claim = 1796405733585962383;
  m.to_claim = 1796405733585962999;
  ASSERT_OK_AND_ASSIGN(FailoverMessage back, DecodeFailover(EncodeFailover(m)));
  EXPECT_EQ(back, m);
}

TEST(FailoverMessage, OpenRequestsAndAnswersRoundTrip) {
  FailoverMessage request = Message(Role::kClient, 0, 0, "a.1.2");
  request.open_from = "10.0.0.1:40000";
  request.open_to = "[fd00::2]:5001";
  EXPECT_TRUE(request.IsOpenRequest());
  ASSERT_OK_AND_ASSIGN(FailoverMessage back,
                       DecodeFailover(EncodeFailover(request)));
  EXPECT_EQ(back, request);
  FailoverMessage answer = Message(Role::kServer, 0, 0, "b.3.4");
  answer.answer = "refused";
  ASSERT_OK_AND_ASSIGN(back, DecodeFailover(EncodeFailover(answer)));
  EXPECT_EQ(back, answer);
  EXPECT_FALSE(back.IsOpenRequest());
  const std::string base =
      "failover 1 session=00000000000000010000000000000002 role=client "
      "offset=0 from=p";
  EXPECT_THAT(DecodeFailover(base + " answer=maybe"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("answer")));
  EXPECT_THAT(DecodeFailover(base + " open_to=10.0.0.2:1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("open_from")));
}

TEST(FailoverMessage, ACauseRoundTripsAndIsOneWord) {
  FailoverMessage m = Message(Role::kServer, 10, 0, "b.3.4");
  m.cause = "exit";
  ASSERT_OK_AND_ASSIGN(FailoverMessage back, DecodeFailover(EncodeFailover(m)));
  EXPECT_EQ(back.cause, "exit");
  EXPECT_EQ(
      EncodeFailover(Message(Role::kServer, 10, 0, "b.3.4")).find("cause"),
      std::string::npos);
  const std::string base =
      "failover 1 session=00000000000000010000000000000002 role=server "
      "offset=10 from=p";
  EXPECT_THAT(DecodeFailover(base + " cause=Exit!"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("cause")));
  // A word this version does not know is kept, for the log to show.
  ASSERT_OK_AND_ASSIGN(back, DecodeFailover(base + " cause=maintenance"));
  EXPECT_EQ(back.cause, "maintenance");
}

TEST(FailoverMessage, RejectsForeignText) {
  EXPECT_THAT(DecodeFailover("hello world"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeFailover("failover 2 session=00"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("version 1")));
}

TEST(FailoverMessage, NamesTheBadField) {
  EXPECT_THAT(
      DecodeFailover(
          "failover 1 session=00000000000000010000000000000002 role=client "
          "offset=12x from=p"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::HasSubstr("offset")));
  EXPECT_THAT(
      DecodeFailover(
          "failover 1 session=00000000000000010000000000000002 role=client"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::HasSubstr("lacks")));
}

}  // namespace
}  // namespace diskwire
