// File: core/reassembly.h
// One receiving direction of a session after a failover: puts the bytes that
// arrive by two paths back into one ordered stream, each byte exactly once.
//
// The two paths are the old TCP socket (drained from the delivered offset, so
// contiguous) and DATA records tailed from the volume (offset + payload, which
// may overlap, repeat, or arrive out of order within a bounded window). See
// docs/ARCHITECTURE.md, "Offsets and who holds which byte".

#ifndef DISKWIRE_CORE_REASSEMBLY_H_
#define DISKWIRE_CORE_REASSEMBLY_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace diskwire {

// Holds the bytes [next_offset(), next_offset() + window) that have arrived
// and hands them out in order.
//
// Thread safety: none; the owning Session serialises calls.
class Reassembly {
 public:
  static constexpr size_t kDefaultWindow = 8 << 20;  // 8 MiB

  // The next byte to hand out has offset `start_offset` (the delivered offset
  // at failover). Memory is bounded by `window` bytes. REQUIRES: window > 0.
  explicit Reassembly(uint64_t start_offset = 0,
                      size_t window = kDefaultWindow);

  Reassembly(const Reassembly&) = delete;
  Reassembly& operator=(const Reassembly&) = delete;

  // Accepts the stream bytes [offset, offset + bytes.size()). Bytes already
  // handed out or already held are discarded; the rest are kept.
  // Errors (nothing is kept):
  //  - ResourceExhausted when the piece ends beyond window_end(): the caller
  //    offers it again after taking bytes out (or the sender is broken).
  //  - DataLoss when a byte differs from the byte already held at the same
  //    offset: the two paths disagree, the stream cannot be trusted.
  absl::Status Offer(uint64_t offset, absl::string_view bytes);

  // Offset of the next byte TakeReady() hands out (the delivered offset).
  uint64_t next_offset() const { return next_offset_; }
  // Everything below this offset has arrived: next_offset() + ReadyBytes().
  uint64_t contiguous_end() const;
  // Offer() rejects pieces that end past this: next_offset() + window.
  uint64_t window_end() const { return next_offset_ + window_; }
  // Bytes held, ready or not.
  size_t buffered_bytes() const { return buffered_; }
  // Bytes discarded so far because they were already delivered or held.
  uint64_t duplicate_bytes() const { return duplicates_; }

  // The ready bytes at next_offset() that are stored contiguously (possibly
  // fewer than all ready bytes); empty when none is ready. Valid until the next
  // non-const call. Pair with Consume() to write straight from it.
  absl::string_view Peek() const;
  // Hands out `n` bytes at next_offset(). REQUIRES: n <= Peek().size().
  void Consume(size_t n);

  // Copies up to `max` ready bytes into `out` in order, hands them out and
  // returns how many.
  size_t TakeReady(size_t max, char* out);
  // Appends up to `max` ready bytes to `*out`; returns how many.
  size_t TakeReady(size_t max, std::string* out);

 private:
  struct Piece {
    std::string data;  // Bytes [key, key + data.size()).
    size_t skip = 0;   // Prefix already handed out (front piece only).
  };
  static uint64_t End(const std::map<uint64_t, Piece>::value_type& p) {
    return p.first + p.second.data.size();
  }

  const size_t window_;
  uint64_t next_offset_;
  size_t buffered_ = 0;
  uint64_t duplicates_ = 0;
  // Non-overlapping pieces keyed by stream offset; all end above next_offset_.
  std::map<uint64_t, Piece> pieces_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_REASSEMBLY_H_
