// Proves that every system library the build links resolves offline.
// (libsodium is loaded at run time: storage/blake2b_test.)
#include <xxhash.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

TEST(ThirdParty, LibrariesLink) {
  absl::StatusOr<int> v = 7;
  absl::Mutex mu;
  absl::MutexLock l(&mu);
  EXPECT_EQ(absl::StrCat("x", *v), "x7");
  EXPECT_NE(XXH3_64bits("abc", 3), XXH3_64bits("abd", 3));
  unw_context_t ctx;
  EXPECT_EQ(unw_getcontext(&ctx), 0);
}
