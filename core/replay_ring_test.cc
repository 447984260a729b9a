#include "core/replay_ring.h"

#include <sys/uio.h>

#include <random>
#include <string>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::absl::StatusCode;

class ReplayRingTest : public ::testing::Test {
 protected:
  // Reads [offset, offset + max) back through CopyOut.
  static std::string Read(const ReplayRing& ring, uint64_t offset, size_t max) {
    std::string out(max, '\0');
    absl::StatusOr<size_t> n = ring.CopyOut(offset, max, out.data());
    if (!n.ok()) return "error: " + n.status().ToString();
    out.resize(*n);
    return out;
  }
  // Joins a view's two pieces.
  static std::string Join(const RingView& v) {
    return std::string(v.first) + std::string(v.second);
  }
};

TEST_F(ReplayRingTest, EmptyRing) {
  ReplayRing ring(16);
  EXPECT_EQ(ring.head(), 0u);
  EXPECT_EQ(ring.tail(), 0u);
  EXPECT_EQ(ring.size(), 0u);
  EXPECT_EQ(ring.Free(), 16u);
  EXPECT_EQ(Read(ring, 0, 10), "");
}

TEST_F(ReplayRingTest, AppendThenReadBack) {
  ReplayRing ring(16);
  EXPECT_EQ(ring.Append("hello"), 5u);
  EXPECT_EQ(ring.Append(" world"), 6u);
  EXPECT_EQ(ring.head(), 11u);
  EXPECT_EQ(ring.Free(), 5u);
  EXPECT_EQ(Read(ring, 0, 100), "hello world");
  EXPECT_EQ(Read(ring, 6, 3), "wor");
}

TEST_F(ReplayRingTest, AppendStopsAtFreeNeverOverwrites) {
  ReplayRing ring(8);
  EXPECT_EQ(ring.Append("abcdef"), 6u);
  EXPECT_EQ(ring.Append("ghijkl"), 2u);  // Only two bytes of room.
  EXPECT_EQ(ring.Free(), 0u);
  EXPECT_EQ(ring.Append("x"), 0u);
  EXPECT_EQ(Read(ring, 0, 8), "abcdefgh");
}

TEST_F(ReplayRingTest, GatherAppendCopiesInOrderAndStopsWhenFull) {
  ReplayRing ring(8);
  char a[] = "abc", b[] = "defgh", c[] = "ijk";
  iovec iov[4] = {{a, 3}, {nullptr, 0}, {b, 5}, {c, 3}};
  EXPECT_EQ(ring.Append(iov, 4, 11, 0), 8u);
  EXPECT_EQ(Read(ring, 0, 8), "abcdefgh");
}

TEST_F(ReplayRingTest, GatherAppendStopsAtTheLengthGiven) {
  ReplayRing ring(16);
  char a[] = "abc", b[] = "defgh";
  iovec iov[2] = {{a, 3}, {b, 5}};
  EXPECT_EQ(ring.Append(iov, 2, 4, 0), 4u);
  EXPECT_EQ(ring.head(), 4u);
  EXPECT_EQ(Read(ring, 0, 16), "abcd");
}

TEST_F(ReplayRingTest, BytesThePeerHoldsAreNotCopied) {
  ReplayRing ring(16);
  ASSERT_EQ(ring.Append("0123"), 4u);
  char a[] = "abc", b[] = "defgh";
  iovec iov[2] = {{a, 3}, {b, 5}};
  // The peer holds up to offset 9 ("0123abcde"): the rest of the send only.
  EXPECT_EQ(ring.Append(iov, 2, 7, 9), 2u);
  EXPECT_EQ(ring.tail(), 9u);
  EXPECT_EQ(ring.head(), 11u);
  EXPECT_EQ(Read(ring, 9, 16), "fg");
  EXPECT_FALSE(ring.ViewFrom(8, 1).ok());
}

TEST_F(ReplayRingTest, AnAckInsideTheKeptBytesReleasesThoseBelowIt) {
  ReplayRing ring(16);
  ASSERT_EQ(ring.Append("0123"), 4u);
  char a[] = "abc";
  iovec iov[1] = {{a, 3}};
  EXPECT_EQ(ring.Append(iov, 1, 3, 2), 3u);
  EXPECT_EQ(ring.tail(), 2u);
  EXPECT_EQ(Read(ring, 2, 16), "23abc");
}

TEST_F(ReplayRingTest, AWholeSendThePeerHoldsLeavesTheRingEmptyAtItsEnd) {
  ReplayRing ring(16);
  ASSERT_EQ(ring.Append("0123"), 4u);
  char a[] = "abcdef";
  iovec iov[1] = {{a, 6}};
  EXPECT_EQ(ring.Append(iov, 1, 6, 100), 0u);  // an ack past the send: capped
  EXPECT_EQ(ring.tail(), 10u);
  EXPECT_EQ(ring.head(), 10u);
  EXPECT_EQ(ring.Free(), 16u);
}

TEST_F(ReplayRingTest, SkippingHoldsNoMoreMemoryThanItKeeps) {
  ReplayRing ring(1 << 20);
  const std::string block(ReplayRing::kChunkBytes, 'x');
  iovec iov[1] = {{const_cast<char*>(block.data()), block.size()}};
  ring.Append(iov, 1, block.size(), 0);
  const size_t allocated = ring.allocated_bytes();
  for (int i = 0; i < 10; ++i) {
    // Half of every send acknowledged before it is appended.
    ring.Append(iov, 1, block.size(), ring.head() + block.size() / 2);
    EXPECT_LE(ring.allocated_bytes(), allocated + ReplayRing::kChunkBytes);
  }
  EXPECT_EQ(ring.size(), block.size() / 2);
}

TEST_F(ReplayRingTest, AViewAcrossAChunkBoundaryHasTwoPieces) {
  constexpr size_t kChunk = ReplayRing::kChunkBytes;
  ReplayRing ring(1 << 20);
  ring.Append(std::string(kChunk - 3, 'a'));
  ring.Append("bcdefg");  // Crosses into the second chunk.
  ASSERT_OK_AND_ASSIGN(RingView view, ring.ViewFrom(kChunk - 5, 100));
  EXPECT_EQ(view.first, "aabcd");
  EXPECT_EQ(view.second, "efg");
  EXPECT_EQ(Read(ring, kChunk - 4, 5), "abcde");
}

TEST_F(ReplayRingTest, AViewStopsAfterTwoChunksAndCopyOutDoesNot) {
  constexpr size_t kChunk = ReplayRing::kChunkBytes;
  ReplayRing ring(1 << 20);
  ring.Append(std::string(3 * kChunk, 'x'));
  ASSERT_OK_AND_ASSIGN(RingView view, ring.ViewFrom(10, 3 * kChunk));
  EXPECT_EQ(view.size(), 2 * kChunk - 10);
  std::string out(3 * kChunk, '\0');
  ASSERT_OK_AND_ASSIGN(size_t n, ring.CopyOut(10, 3 * kChunk, out.data()));
  EXPECT_EQ(n, 3 * kChunk - 10);
}

// A stream through the ring costs what it keeps, not the capacity: the
// memory of a long-lived connection (issue 15).
TEST_F(ReplayRingTest, AStreamHoldsOnlyTheChunksItKeeps) {
  ReplayRing ring(4 << 20);
  const std::string block(16 << 10, 'z');
  size_t most = 0;
  for (int i = 0; i < 6400; ++i) {  // 100 MiB, the peer 32 KiB behind
    ASSERT_EQ(ring.Append(block), block.size());
    if (ring.head() > (32 << 10)) {
      ASSERT_THAT(ring.TrimTo(ring.head() - (32 << 10)), IsOk());
    }
    most = std::max(most, ring.allocated_bytes());
  }
  EXPECT_LE(most, 3 * ReplayRing::kChunkBytes);
  ASSERT_THAT(ring.TrimTo(ring.head()), IsOk());
  EXPECT_LE(ring.allocated_bytes(), 2 * ReplayRing::kChunkBytes);
}

// Bytes in flight that swing by megabytes (four iperf3 streams on loopback)
// cycle through the same chunks: none goes back to malloc while the stream
// needs it, and a connection that went quiet holds two spares after two
// passes of the engine's ReleaseIdleSpares().
TEST_F(ReplayRingTest, ASwingingStreamReusesItsChunksAndAQuietOneLetsGo) {
  ReplayRing ring(4 << 20);
  const std::string block(2 << 20, 's');
  ASSERT_EQ(ring.Append(block), block.size());
  const size_t swing = ring.allocated_bytes();
  EXPECT_GE(swing, block.size());
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(ring.TrimTo(ring.head()), IsOk());
    ring.ReleaseIdleSpares();  // the stream takes every spare before the next
    ASSERT_EQ(ring.Append(block), block.size());
    EXPECT_EQ(ring.allocated_bytes(), swing) << "swing " << i;
  }
  ASSERT_THAT(ring.TrimTo(ring.head()), IsOk());
  ring.ReleaseIdleSpares();  // the last append took every spare this pass
  EXPECT_EQ(ring.allocated_bytes(), swing) << "a spare went while needed";
  ring.ReleaseIdleSpares();  // a whole pass in which no append took one
  // Nothing kept, the head at a chunk boundary: two spares.
  EXPECT_EQ(ring.allocated_bytes(), 2 * ReplayRing::kChunkBytes);
  ASSERT_EQ(ring.Append(block), block.size());
  EXPECT_EQ(Read(ring, ring.tail(), 4), "ssss");
}

// The head comes back to chunks written megabytes ago: the appends bypass
// the cache (core/cold_copy.h), at unaligned offsets, and every byte is kept.
TEST_F(ReplayRingTest, AppendsToColdChunksAreExact) {
  ReplayRing ring(8 << 20);
  std::mt19937_64 rng(3);
  std::string stream;
  for (int swing = 0; swing < 3; ++swing) {
    const uint64_t from = ring.head();
    while (ring.head() - from < (4 << 20)) {
      std::string piece(1 + rng() % 100000, '\0');
      for (char& c : piece) c = static_cast<char>(rng());
      ASSERT_EQ(ring.Append(piece), piece.size());
      stream += piece;
    }
    ASSERT_EQ(Read(ring, from, stream.size() - from), stream.substr(from));
    ASSERT_THAT(ring.TrimTo(ring.head()), IsOk());
  }
}

TEST_F(ReplayRingTest, AnEndedConnectionReleasesItsChunks) {
  ReplayRing ring(4 << 20);
  ASSERT_EQ(ring.Append(std::string(3 * ReplayRing::kChunkBytes, 'a')),
            3 * ReplayRing::kChunkBytes);
  ASSERT_THAT(ring.TrimTo(2 * ReplayRing::kChunkBytes), IsOk());
  ASSERT_EQ(ring.Append("hello"), 5u);
  EXPECT_GT(ring.allocated_bytes(), 2 * ReplayRing::kChunkBytes);
  ring.ReleaseAll();
  EXPECT_EQ(ring.allocated_bytes(), 0u);
  EXPECT_EQ(ring.tail(), ring.head());
  EXPECT_EQ(ring.head(), 3 * ReplayRing::kChunkBytes + 5);
  // Still a ring: a late byte goes at its offset.
  ASSERT_EQ(ring.Append("!"), 1u);
  std::string out(1, '\0');
  ASSERT_OK_AND_ASSIGN(
      size_t n, ring.CopyOut(3 * ReplayRing::kChunkBytes + 5, 1, out.data()));
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(out, "!");
}

TEST_F(ReplayRingTest, GrowKeepsEveryByteAtItsOffsetAcrossTheWrap) {
  ReplayRing ring(8);
  ring.Append("012345");
  ASSERT_THAT(ring.TrimTo(5), IsOk());
  ring.Append("6789ab");  // wraps: kept bytes are "56789ab"
  EXPECT_EQ(ring.Free(), 1u);
  ring.Grow(13);
  EXPECT_EQ(ring.capacity(), 13u);
  EXPECT_EQ(ring.Free(), 6u);
  EXPECT_EQ(ring.Append("cdefgh"), 6u);
  EXPECT_EQ(Read(ring, 5, 100), "56789abcdefgh");
  ring.Grow(4);  // never shrinks
  EXPECT_EQ(ring.capacity(), 13u);
  EXPECT_EQ(Read(ring, 9, 2), "9a");
}

TEST_F(ReplayRingTest, ViewIsLimitedByMax) {
  ReplayRing ring(8);
  ring.Append("abcdef");
  ASSERT_OK_AND_ASSIGN(RingView view, ring.ViewFrom(1, 2));
  EXPECT_EQ(Join(view), "bc");
  EXPECT_TRUE(view.second.empty());
}

TEST_F(ReplayRingTest, TrimIsMonotonicAndIdempotent) {
  ReplayRing ring(8);
  ring.Append("abcdef");
  ASSERT_THAT(ring.TrimTo(4), IsOk());
  EXPECT_EQ(ring.tail(), 4u);
  EXPECT_EQ(ring.Free(), 6u);
  ASSERT_THAT(ring.TrimTo(2), IsOk());  // Below tail: ignored.
  ASSERT_THAT(ring.TrimTo(4), IsOk());  // Repeated: ignored.
  EXPECT_EQ(ring.tail(), 4u);
  ASSERT_THAT(ring.TrimTo(6), IsOk());  // Everything: empty again.
  EXPECT_EQ(ring.size(), 0u);
}

TEST_F(ReplayRingTest, TrimBeyondHeadIsRejectedAndChangesNothing) {
  ReplayRing ring(8);
  ring.Append("abc");
  EXPECT_THAT(ring.TrimTo(4), StatusIs(StatusCode::kOutOfRange,
                                       testing::HasSubstr("beyond head 3")));
  EXPECT_EQ(ring.tail(), 0u);
  EXPECT_EQ(Read(ring, 0, 3), "abc");
}

TEST_F(ReplayRingTest, ReadingReleasedOrUnsentBytesIsOutOfRange) {
  ReplayRing ring(8);
  ring.Append("abcdef");
  ASSERT_THAT(ring.TrimTo(3), IsOk());
  EXPECT_THAT(ring.ViewFrom(2, 1), StatusIs(StatusCode::kOutOfRange));
  EXPECT_THAT(ring.ViewFrom(7, 1), StatusIs(StatusCode::kOutOfRange));
  char dst[4];
  EXPECT_THAT(ring.CopyOut(2, 4, dst), StatusIs(StatusCode::kOutOfRange));
  ASSERT_OK_AND_ASSIGN(RingView at_head, ring.ViewFrom(6, 4));
  EXPECT_EQ(at_head.size(), 0u);
}

TEST_F(ReplayRingTest, BulkAppendsAcrossTheWrapAreExact) {
  // Appends of 16 KiB and more take the streaming-store path; unaligned
  // positions and a wrap inside the copy must not change a byte.
  ReplayRing ring(100003);
  std::string stream;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    std::string chunk(16384 + rng() % 30000, '\0');
    for (char& c : chunk) c = static_cast<char>(rng());
    // Keep the last (up to) 10 bytes of what came before.
    const uint64_t from = ring.head() - std::min<uint64_t>(ring.size(), 10);
    ASSERT_THAT(ring.TrimTo(from), IsOk());
    ASSERT_EQ(ring.Append(chunk), chunk.size());
    stream += chunk;
    ASSERT_EQ(Read(ring, from, stream.size()), stream.substr(from));
  }
}

TEST_F(ReplayRingTest, StartOffsetIsHonoured) {
  // A session resumed mid-stream numbers its bytes from where it stands.
  ReplayRing ring(8, /*start_offset=*/1'000'000'007ULL);
  ring.Append("xyz");
  EXPECT_EQ(ring.tail(), 1'000'000'007ULL);
  EXPECT_EQ(ring.head(), 1'000'000'010ULL);
  EXPECT_EQ(Read(ring, 1'000'000'008ULL, 5), "yz");
}

// Model check: a long random sequence of appends, trims and reads against a
// plain string holding the whole stream.
TEST_F(ReplayRingTest, RandomOperationsMatchModel) {
  std::mt19937_64 rng(12345);
  ReplayRing ring(97);  // Not a power of two: exercises the modulo path.
  std::string stream;   // Every byte ever appended, offset = index.
  uint64_t tail = 0;
  for (int step = 0; step < 20000; ++step) {
    switch (rng() % 3) {
      case 0: {
        std::string chunk(rng() % 60, '\0');
        for (char& c : chunk) c = static_cast<char>(rng());
        size_t want =
            std::min<size_t>(chunk.size(), 97 - (stream.size() - tail));
        ASSERT_EQ(ring.Append(chunk), want);
        stream.append(chunk, 0, want);
        break;
      }
      case 1: {
        uint64_t to = tail + rng() % (stream.size() - tail + 1);
        ASSERT_THAT(ring.TrimTo(to), IsOk());
        tail = to;
        break;
      }
      default: {
        uint64_t from = tail + rng() % (stream.size() - tail + 1);
        size_t max = rng() % 100;
        ASSERT_EQ(Read(ring, from, max), stream.substr(from, max));
      }
    }
    ASSERT_EQ(ring.head(), stream.size());
    ASSERT_EQ(ring.tail(), tail);
  }
}

// The same model through the one-buffer send form: small appends inside the
// head's chunk (the inline path), appends that end exactly at a chunk's end,
// and appends across chunks, against the plain string.
TEST_F(ReplayRingTest, OneBufferSendsMatchModelAcrossChunkEnds) {
  constexpr size_t kChunk = ReplayRing::kChunkBytes;
  std::mt19937_64 rng(99);
  ReplayRing ring(3 * kChunk + 17);
  std::string stream;
  uint64_t tail = 0;
  for (int step = 0; step < 3000; ++step) {
    const uint64_t head = ring.head();
    size_t len;
    switch (rng() % 4) {
      case 0:  // exactly to the end of the head's chunk
        len = kChunk - head % kChunk;
        break;
      case 1:
        len = rng() % (2 * kChunk);
        break;
      default:
        len = rng() % 200;
    }
    len = std::min<size_t>(len, ring.Free());
    std::string bytes(len + rng() % 3, '\0');  // the buffer may be longer
    for (char& c : bytes) c = static_cast<char>(rng());
    iovec iov{bytes.data(), bytes.size()};
    ASSERT_EQ(ring.Append(&iov, 1, len, /*held=*/rng() % 2 ? 0 : tail), len);
    stream.append(bytes, 0, len);
    ASSERT_EQ(ring.head(), stream.size());
    if (rng() % 3 == 0) {
      tail += rng() % (stream.size() - tail + 1);
      ASSERT_THAT(ring.TrimTo(tail), IsOk());
    }
    const uint64_t from = tail + rng() % (stream.size() - tail + 1);
    ASSERT_EQ(Read(ring, from, stream.size()), stream.substr(from));
  }
}

TEST(ReplayRing, RestartAtContinuesAtTheGivenOffset) {
  ReplayRing ring(16);
  ASSERT_EQ(ring.Append("abcdef"), 6u);
  ring.RestartAt(1000);
  EXPECT_EQ(ring.tail(), 1000u);
  EXPECT_EQ(ring.head(), 1000u);
  EXPECT_EQ(ring.Free(), 16u);
  ASSERT_EQ(ring.Append("xyz"), 3u);
  auto view = ring.ViewFrom(1000, 3);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(std::string(view->first) + std::string(view->second), "xyz");
  EXPECT_FALSE(ring.ViewFrom(999, 1).ok());
}

}  // namespace
}  // namespace diskwire
