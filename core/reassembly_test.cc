#include "core/reassembly.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::absl::StatusCode;

class ReassemblyTest : public ::testing::Test {
 protected:
  // Offers stream[offset, offset + len) of the fixture's stream.
  absl::Status OfferRange(Reassembly& r, uint64_t offset, size_t len) {
    return r.Offer(offset, absl::string_view(stream_).substr(offset, len));
  }
  static absl::Status OfferRangeOf(Reassembly& r, const std::string& stream,
                                   uint64_t offset, uint64_t len) {
    return r.Offer(offset, absl::string_view(stream).substr(offset, len));
  }
  // Takes everything that is ready.
  static std::string TakeAll(Reassembly& r) {
    std::string out;
    r.TakeReady(SIZE_MAX, &out);
    return out;
  }

  std::string stream_ = "The quick brown fox jumps over the lazy dog";
};

TEST_F(ReassemblyTest, InOrderPiecesComeOutInOrder) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 0, 4), IsOk());
  ASSERT_THAT(OfferRange(r, 4, 6), IsOk());
  EXPECT_EQ(r.contiguous_end(), 10u);
  EXPECT_EQ(TakeAll(r), "The quick ");
  EXPECT_EQ(r.next_offset(), 10u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST_F(ReassemblyTest, GapHoldsBackLaterBytes) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 4, 6), IsOk());
  EXPECT_EQ(r.Peek(), "");
  EXPECT_EQ(TakeAll(r), "");
  EXPECT_EQ(r.contiguous_end(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 6u);
  ASSERT_THAT(OfferRange(r, 0, 4), IsOk());
  EXPECT_EQ(TakeAll(r), "The quick ");
}

TEST_F(ReassemblyTest, DeliveredBytesOfferedAgainAreDiscarded) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 0, 10), IsOk());
  EXPECT_EQ(TakeAll(r), "The quick ");
  ASSERT_THAT(OfferRange(r, 0, 10), IsOk());  // Whole piece: old news.
  ASSERT_THAT(OfferRange(r, 5, 10), IsOk());  // Half old, half new.
  EXPECT_EQ(TakeAll(r), "brown");
  EXPECT_EQ(r.duplicate_bytes(), 15u);
}

TEST_F(ReassemblyTest, OverlapWithHeldPiecesKeepsOnlyGaps) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 4, 2), IsOk());   // [4,6)
  ASSERT_THAT(OfferRange(r, 8, 2), IsOk());   // [8,10)
  ASSERT_THAT(OfferRange(r, 2, 12), IsOk());  // [2,14) spans both.
  EXPECT_EQ(r.buffered_bytes(), 12u);
  EXPECT_EQ(r.duplicate_bytes(), 4u);
  ASSERT_THAT(OfferRange(r, 0, 2), IsOk());
  EXPECT_EQ(TakeAll(r), stream_.substr(0, 14));
}

TEST_F(ReassemblyTest, StartOffsetIsTheDeliveredOffset) {
  Reassembly r(/*start_offset=*/10);
  ASSERT_THAT(OfferRange(r, 0, 16), IsOk());  // From the volume, from F < 10.
  EXPECT_EQ(TakeAll(r), "brown ");
}

TEST_F(ReassemblyTest, PeekAndPartialConsume) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 0, 9), IsOk());
  EXPECT_EQ(r.Peek(), "The quick");
  r.Consume(4);
  EXPECT_EQ(r.Peek(), "quick");
  EXPECT_EQ(r.next_offset(), 4u);
  ASSERT_THAT(OfferRange(r, 0, 12), IsOk());  // Overlaps the half-taken piece.
  std::string out;
  EXPECT_EQ(r.TakeReady(3, &out), 3u);
  EXPECT_EQ(out, "qui");
  EXPECT_EQ(TakeAll(r), "ck br");
}

TEST_F(ReassemblyTest, PieceBeyondWindowIsResourceExhausted) {
  Reassembly r(0, /*window=*/16);
  EXPECT_THAT(OfferRange(r, 10, 7), StatusIs(StatusCode::kResourceExhausted,
                                             testing::HasSubstr("window")));
  EXPECT_EQ(r.buffered_bytes(), 0u);
  ASSERT_THAT(OfferRange(r, 10, 6), IsOk());  // Exactly at the edge.
  ASSERT_THAT(OfferRange(r, 0, 10), IsOk());
  EXPECT_EQ(TakeAll(r).size(), 16u);
  EXPECT_EQ(r.window_end(), 32u);  // The window slides with delivery.
  ASSERT_THAT(OfferRange(r, 16, 16), IsOk());
}

TEST_F(ReassemblyTest, ConflictingBytesAreDataLossAndNothingIsKept) {
  Reassembly r;
  ASSERT_THAT(OfferRange(r, 4, 6), IsOk());
  EXPECT_THAT(r.Offer(0, "The quack brown"),
              StatusIs(StatusCode::kDataLoss, testing::HasSubstr("[4, 10)")));
  EXPECT_EQ(r.buffered_bytes(), 6u);
  EXPECT_EQ(r.contiguous_end(), 0u);
}

TEST_F(ReassemblyTest, OffsetOverflowIsInvalidArgument) {
  Reassembly r;
  EXPECT_THAT(r.Offer(UINT64_MAX - 1, "abc"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(ReassemblyTest, EmptyPieceIsAccepted) {
  Reassembly r;
  ASSERT_THAT(r.Offer(5, ""), IsOk());
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

// The property the session relies on: whatever the split, duplication and
// reordering of the pieces (within the window), output == input, and every
// byte is handed out once.
TEST_F(ReassemblyTest, PropertyRandomSplitsDuplicatesAndReordering) {
  std::mt19937_64 rng(20261125);
  for (int round = 0; round < 200; ++round) {
    std::string input(1 + rng() % 5000, '\0');
    for (char& c : input) c = static_cast<char>(rng());
    const uint64_t base = rng() % 1000;  // Delivered offset at failover.

    // Pieces: random ranges covering the stream, some repeated, some starting
    // below base (bytes the old socket already delivered).
    struct Range {
      uint64_t off;
      size_t len;
    };
    std::vector<Range> pieces;
    for (uint64_t at = 0; at < input.size();) {
      size_t len = 1 + rng() % 300;
      len = std::min<size_t>(len, input.size() - at);
      pieces.push_back({at, len});
      if (rng() % 4 == 0) {  // An overlapping extra piece.
        uint64_t o = at - std::min<uint64_t>(at, rng() % 100);
        pieces.push_back(
            {o, std::min<size_t>(1 + rng() % 400, input.size() - o)});
      }
      at += len;
    }
    size_t dups = pieces.size() / 3;
    for (size_t i = 0; i < dups; ++i)
      pieces.push_back(pieces[rng() % pieces.size()]);
    std::shuffle(pieces.begin(), pieces.end(), rng);

    // The whole stream is numbered from 0; the reassembly starts at `base`
    // (bytes below it were delivered before failover).
    std::string full = std::string(base, 'x') + input;
    Reassembly r(base, /*window=*/8192);
    std::string output;
    for (const Range& p : pieces) {
      ASSERT_THAT(r.Offer(base + p.off,
                          absl::string_view(full).substr(base + p.off, p.len)),
                  IsOk());
      if (rng() % 2) r.TakeReady(rng() % 700, &output);
    }
    r.TakeReady(SIZE_MAX, &output);
    ASSERT_EQ(output, input) << "round " << round;
    ASSERT_EQ(r.next_offset(), base + input.size());
    ASSERT_EQ(r.buffered_bytes(), 0u);
  }
}

// The failover case itself, at every cut: the application had read `d`
// bytes, the old socket still holds [d, d + q), the sender resends [F, N) as
// records (F <= d + q: everything below F is in the receiver's kernel), and the
// two paths interleave in any order.
TEST_F(ReassemblyTest, OldSocketAndVolumeAtEveryCut) {
  std::mt19937_64 rng(99);
  std::string stream(600, '\0');
  for (char& c : stream) c = static_cast<char>(rng());
  const uint64_t n = stream.size();
  for (uint64_t d = 0; d <= n; d += 37) {
    for (uint64_t q = 0; d + q <= n; q += 53) {
      for (uint64_t f = d / 2; f <= d + q; f += 41) {
        Reassembly r(d, /*window=*/4096);
        std::vector<std::pair<uint64_t, uint64_t>> socket_reads, records;
        for (uint64_t at = d; at < d + q;) {  // Socket reads, in order.
          uint64_t len = std::min<uint64_t>(1 + rng() % 40, d + q - at);
          socket_reads.push_back({at, len});
          at += len;
        }
        for (uint64_t at = f; at < n;) {  // Records, in order.
          uint64_t len = std::min<uint64_t>(1 + rng() % 64, n - at);
          records.push_back({at, len});
          at += len;
        }
        std::string out;
        size_t si = 0, ri = 0;
        while (si < socket_reads.size() || ri < records.size()) {
          bool from_socket =
              ri == records.size() || (si < socket_reads.size() && rng() % 2);
          auto [off, len] = from_socket ? socket_reads[si++] : records[ri++];
          ASSERT_THAT(OfferRangeOf(r, stream, off, len), IsOk());
          r.TakeReady(rng() % 50, &out);
        }
        r.TakeReady(SIZE_MAX, &out);
        ASSERT_EQ(out, stream.substr(d))
            << "d=" << d << " q=" << q << " F=" << f;
      }
    }
  }
}

}  // namespace
}  // namespace diskwire
