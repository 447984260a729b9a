#include "core/cold_copy.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Every alignment of both ends and every length around the 64-byte lines the
// streaming stores write: the bytes are memcpy's, and nothing around them is
// touched.
TEST(ColdCopy, CopiesExactlyAtEveryAlignmentAndLength) {
  std::mt19937 rng(11);
  std::string src(4096, '\0');
  for (char& c : src) c = static_cast<char>(rng());
  for (size_t src_at = 0; src_at < 64; src_at += 7) {
    for (size_t dst_at = 0; dst_at < 64; ++dst_at) {
      for (size_t len : {0, 1, 63, 64, 65, 127, 128, 129, 191, 1000, 3000}) {
        std::string dst(4096 + 128, '#');
        ColdCopy(dst.data() + dst_at, src.data() + src_at, len);
        ASSERT_EQ(dst.substr(dst_at, len), src.substr(src_at, len))
            << "src+" << src_at << " dst+" << dst_at << " len " << len;
        ASSERT_EQ(dst.find_first_not_of('#'),
                  len == 0 ? std::string::npos : dst_at);
        ASSERT_EQ(dst.find_first_not_of('#', dst_at + len), std::string::npos);
      }
    }
  }
}

TEST(ColdCopy, ColdDistanceIsACacheSize) {
  EXPECT_GE(ColdDistance(), size_t{64} << 10);
  EXPECT_LE(ColdDistance(), size_t{1} << 30);
}

}  // namespace
}  // namespace diskwire
