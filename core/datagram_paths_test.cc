#include "core/datagram_paths.h"

#include "gtest/gtest.h"

namespace diskwire {
namespace {

constexpr int64_t kMs = 1'000'000;

DatagramPaths::Address Ip(uint8_t last) {
  DatagramPaths::Address a = {};
  a[10] = a[11] = 0xff;
  a[12] = 10;
  a[15] = last;
  return a;
}

DatagramPaths::Options Bound(int64_t detect_ms) {
  DatagramPaths::Options o;
  o.detect_ns = detect_ms * kMs;
  o.idle_ns = 10'000 * kMs;
  return o;
}

TEST(DatagramPathsTest, ProbesAQuarterBoundApartWhileUsed) {
  DatagramPaths paths(Bound(2000));
  EXPECT_TRUE(paths.DueProbes(0).empty());  // nothing in use
  paths.NoteUse(Ip(2), 0);
  EXPECT_EQ(paths.DueProbes(0), std::vector{Ip(2)});
  EXPECT_TRUE(paths.DueProbes(499 * kMs).empty());
  EXPECT_EQ(paths.DueProbes(500 * kMs), std::vector{Ip(2)});
  EXPECT_LE(paths.NextDeadline(), 1000 * kMs);
}

TEST(DatagramPathsTest, DownAfterABoundWithoutAnswerAndUpAtTheFirst) {
  DatagramPaths paths(Bound(2000));
  paths.NoteUse(Ip(2), 0);
  paths.OnAnswer(Ip(2), 100 * kMs);
  EXPECT_TRUE(paths.Expire(2100 * kMs).empty());  // exactly the bound
  EXPECT_FALSE(paths.IsDown(Ip(2)));
  EXPECT_EQ(paths.Expire(2101 * kMs), std::vector{Ip(2)});
  EXPECT_TRUE(paths.IsDown(Ip(2)));
  EXPECT_TRUE(paths.Expire(5000 * kMs).empty());  // reported once
  EXPECT_TRUE(paths.OnAnswer(Ip(2), 5000 * kMs));
  EXPECT_FALSE(paths.IsDown(Ip(2)));
  EXPECT_FALSE(paths.OnAnswer(Ip(2), 5001 * kMs));
}

// A peer that never answered from the start (its engine not yet up, or the
// path dead before the first datagram) counts from the first use.
TEST(DatagramPathsTest, ANewPathCountsFromItsFirstUse) {
  DatagramPaths paths(Bound(1000));
  paths.NoteUse(Ip(3), 500 * kMs);
  EXPECT_TRUE(paths.Expire(1500 * kMs).empty());
  EXPECT_EQ(paths.Expire(1501 * kMs), std::vector{Ip(3)});
  EXPECT_FALSE(paths.IsDown(Ip(4)));  // unknown paths are up
}

TEST(DatagramPathsTest, ARefusedSendIsDownAtOnceUntilAnAnswer) {
  DatagramPaths paths(Bound(1000));
  paths.NoteUse(Ip(2), 0);
  EXPECT_TRUE(paths.MarkDown(Ip(2), 10 * kMs));
  EXPECT_FALSE(paths.MarkDown(Ip(2), 20 * kMs));
  EXPECT_TRUE(paths.IsDown(Ip(2)));
  EXPECT_TRUE(paths.Expire(5000 * kMs).empty());  // already down
  EXPECT_TRUE(paths.OnAnswer(Ip(2), 5000 * kMs));
  EXPECT_FALSE(paths.IsDown(Ip(2)));
}

TEST(DatagramPathsTest, IdlePathsAreForgotten) {
  DatagramPaths paths(Bound(1000));
  paths.NoteUse(Ip(2), 0);
  paths.Expire(2000 * kMs);
  ASSERT_TRUE(paths.IsDown(Ip(2)));
  EXPECT_TRUE(paths.DueProbes(10'001 * kMs).empty());
  EXPECT_FALSE(paths.IsDown(Ip(2)));
  EXPECT_EQ(paths.NextDeadline(), std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace diskwire
