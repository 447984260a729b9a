// File: base/status_matchers.h
// GoogleTest matchers for absl::Status and absl::StatusOr, which Debian's
// abseil lacks.
//   EXPECT_THAT(v.Append(r), IsOk());
//   EXPECT_THAT(v.Open("x"), StatusIs(absl::StatusCode::kNotFound));
//   ASSERT_OK_AND_ASSIGN(auto reader, v.OpenReader("x"));

#ifndef DISKWIRE_BASE_STATUS_MATCHERS_H_
#define DISKWIRE_BASE_STATUS_MATCHERS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status_macros.h"
#include "gmock/gmock.h"

namespace diskwire {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has status code " + testing::PrintToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + testing::PrintToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         testing::ExplainMatchResult(message_matcher, std::string(s.message()),
                                     result_listener);
}

}  // namespace diskwire

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                     \
  ASSERT_OK_AND_ASSIGN_IMPL_(DW_CONCAT_(dw_assert_statusor_, __LINE__), lhs, \
                             rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  ASSERT_TRUE(statusor.ok()) << statusor.status();       \
  lhs = std::move(statusor).value()

#endif  // DISKWIRE_BASE_STATUS_MATCHERS_H_
