#include "core/failover_message.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST(FailoverMessage, RoundTrips) {
  FailoverMessage m{SessionId{1, 2}, Role::kServer, 4096, 77, "hostb.123.456"};
  ASSERT_OK_AND_ASSIGN(FailoverMessage back, DecodeFailover(EncodeFailover(m)));
  EXPECT_EQ(back, m);
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
