#include "storage/blake2b.h"

#include <string>

#include "absl/strings/escaping.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire::storage {
namespace {

TEST(Blake2bTest, IsLoaded) { EXPECT_THAT(Blake2b::Available(), IsOk()); }

// RFC 7693, appendix A: BLAKE2b-512("abc").
TEST(Blake2bTest, MatchesTheRfcVector) {
  EXPECT_EQ(absl::BytesToHexString(Blake2b::Hash("", "abc", 64)),
            "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
            "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
}

TEST(Blake2bTest, PartsHashAsTheWhole) {
  Blake2b h("key", 32);
  h.Update("ab", 2);
  h.Update("c", 1);
  std::string parts(32, '\0');
  h.Final(reinterpret_cast<unsigned char*>(parts.data()));
  EXPECT_EQ(parts, Blake2b::Hash("key", "abc", 32));
  EXPECT_NE(parts, Blake2b::Hash("other", "abc", 32));
}

TEST(Blake2bTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abcd", "abcd", 4));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abce", 4));
}

}  // namespace
}  // namespace diskwire::storage
