#include "base/status_macros.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return absl::InvalidArgumentError("odd");
  return v / 2;
}

absl::StatusOr<int> Quarter(int v) {
  DW_ASSIGN_OR_RETURN(int h, Half(v));
  DW_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckQuarter(int v) {
  DW_RETURN_IF_ERROR(Quarter(v).status());
  return absl::OkStatus();
}

TEST(StatusMacros, PropagatesValueAndError) {
  ASSERT_OK_AND_ASSIGN(int q, Quarter(8));
  EXPECT_EQ(q, 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckQuarter(4), IsOk());
  EXPECT_THAT(CheckQuarter(2), StatusIs(absl::StatusCode::kInvalidArgument,
                                        testing::HasSubstr("odd")));
}

}  // namespace
}  // namespace diskwire
