#include "core/iov.h"

#include <string>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

std::string Join(const iovec* iov, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(IovSlice, SkipsAndCutsAcrossIovecs) {
  char a[] = "abc", b[] = "defgh", c[] = "ijk";
  const iovec iov[4] = {{a, 3}, {nullptr, 0}, {b, 5}, {c, 3}};
  iovec out[4];
  EXPECT_EQ(IovTotal(iov, 4), 11u);
  size_t n = IovSlice(iov, 4, 2, 5, out);
  EXPECT_EQ(Join(out, n), "cdefg");
  n = IovSlice(iov, 4, 3, 100, out);
  EXPECT_EQ(Join(out, n), "defghijk");
  EXPECT_EQ(n, 2u);  // the empty iovec is skipped
  n = IovSlice(iov, 4, 0, 11, out);
  EXPECT_EQ(Join(out, n), "abcdefghijk");
  EXPECT_EQ(IovSlice(iov, 4, 11, 5, out), 0u);
  EXPECT_EQ(IovSlice(iov, 4, 0, 0, out), 0u);
}

}  // namespace
}  // namespace diskwire
