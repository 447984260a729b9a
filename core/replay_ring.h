// File: core/replay_ring.h
// The bytes one session's application has sent, kept until the peer holds
// them, addressed by stream offset (docs/ARCHITECTURE.md, "Offsets and who
// holds which byte").
//
// While healthy every byte handed to send() is appended here and the ring is
// trimmed by the peer kernel's acknowledgement; after a failover the writer
// reads from the failover offset F onward (ViewFrom / CopyOut) and the ring is
// trimmed by the ack offset in the peer's records.

#ifndef DISKWIRE_CORE_REPLAY_RING_H_
#define DISKWIRE_CORE_REPLAY_RING_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/cold_copy.h"

namespace diskwire {

// Up to two contiguous pieces of the ring (the second is non-empty only when
// the range wraps). Valid until the next TrimTo() below its end.
struct RingView {
  absl::string_view first;
  absl::string_view second;
  size_t size() const { return first.size() + second.size(); }
};

// A bounded byte ring addressed by 64-bit stream offsets. Holds the bytes
// [tail(), head()); never more than capacity().
//
// Thread safety: none of its own. The owning Session serialises every call
// (senders, the writer reading a view, trimming) with its own mutex; the ring
// takes no lock so that the healthy send path is a memcpy or two.
//
// Memory: the bytes live in chunks of kChunkBytes, allocated as the head
// reaches them. Chunks trimming passes become spares for the head, and
// ReleaseIdleSpares() frees those no append needed since its last call: a
// stream that keeps megabytes in flight reuses its chunks, and a connection
// that went quiet holds what it keeps, rounded up to chunks, plus
// kSpareChunks, not its capacity. A view may therefore stop at the end of its
// second chunk: callers loop.
class ReplayRing {
 public:
  static constexpr size_t kDefaultCapacity = 4 << 20;  // 4 MiB
  static constexpr size_t kChunkBytes = 64 << 10;

  // REQUIRES: capacity > 0. The first appended byte gets `start_offset`.
  explicit ReplayRing(size_t capacity = kDefaultCapacity,
                      uint64_t start_offset = 0);

  ReplayRing(const ReplayRing&) = delete;
  ReplayRing& operator=(const ReplayRing&) = delete;

  size_t capacity() const { return capacity_; }
  // Offset of the next byte Append() stores.
  uint64_t head() const { return head_; }
  // Offset of the oldest byte kept.
  uint64_t tail() const { return tail_; }
  // Bytes kept: head() - tail().
  size_t size() const { return static_cast<size_t>(head_ - tail_); }
  // Room for Append(): capacity() - size().
  size_t Free() const { return capacity_ - size(); }

  // Copies min(bytes.size(), Free()) bytes to offset head() and advances
  // head(). Returns the number of bytes copied: never overwrites a kept byte,
  // never allocates. Backpressure (waiting for room, or EAGAIN) is the
  // caller's decision.
  size_t Append(absl::string_view bytes);

  // Appends the first `len` bytes of the gather list, in order, as the
  // string form does, but not those below stream offset `held`, which the
  // peer already holds: they are not copied, and kept bytes below `held` are
  // released. For a send that the peer's kernel acknowledged, in part, before
  // it could be appended; `held` <= head() skips nothing. Returns the bytes
  // copied.
  size_t Append(const iovec* iov, int iovcnt, size_t len, uint64_t held) {
    // The common send, inline: one buffer, nothing acknowledged past what is
    // kept, and it fits in the head's chunk without filling it.
    if (iovcnt == 1 && held <= tail_ && len <= iov[0].iov_len &&
        head_chunk_ != nullptr && len < kChunkBytes - IndexInChunk(head_) &&
        len <= Free()) {
      CopyToHeadChunk(static_cast<const char*>(iov[0].iov_base), len);
      return len;
    }
    return AppendSpanning(iov, iovcnt, len, held);
  }

  // Raises the capacity to `capacity` (no-op when not larger), keeping every
  // byte at its offset: for the rare moment when bytes the application
  // already handed over must be kept beyond the cap (a resume takes back what
  // waits in the socket pair, an exiting process hands over its pair).
  void Grow(size_t capacity);

  // Forgets every byte kept and continues at `offset`: head() == tail() ==
  // offset; the chunks become spares. For a connection that another process
  // wrote to (a forked or re-executed server): the next byte this process
  // sends has that offset; and for bytes the peer's kernel acknowledged
  // before they could be appended, which need no copy.
  void RestartAt(uint64_t offset);

  // Forgets every kept byte (tail() = head()) and frees every chunk, spares
  // included: a connection that ended holds no buffer while its Session
  // waits out the engine's grace period. A later Append allocates again.
  void ReleaseAll();

  // Frees the spares that no append took since the last call, all but
  // kSpareChunks. The engine calls it every 100 ms: a stream whose
  // bytes in flight swing by megabytes keeps the chunks it cycles through
  // instead of giving them back to malloc, which gives them back to the
  // kernel, and faulting them in (zeroed) again at the next swing: at four
  // iperf3 streams on loopback that churn cost the sender more than the copy
  // itself (bench/shim_bench.sh).
  void ReleaseIdleSpares();

  // Bytes of the chunks allocated now (spares included): what the ring costs.
  size_t allocated_bytes() const {
    return (chunks_.size() + spares_.size()) * kChunkBytes;
  }

  // Releases every byte below `offset` (the peer holds them). Offsets at or
  // below tail() are no-ops (trimming is monotonic and may be repeated).
  // Returns OutOfRange, and changes nothing, when offset > head(): the peer
  // cannot hold bytes that were never sent.
  absl::Status TrimTo(uint64_t offset);

  // Up to `max` kept bytes starting at `offset`, without copying, in at most
  // two chunks (fewer bytes than asked when the range spans more). Returns
  // OutOfRange when offset < tail() (already released) or offset > head().
  // offset == head() gives an empty view.
  absl::StatusOr<RingView> ViewFrom(uint64_t offset, size_t max) const;

  // Copies up to `max` kept bytes starting at `offset` into `dst` and returns
  // how many; same errors as ViewFrom().
  absl::StatusOr<size_t> CopyOut(uint64_t offset, size_t max, char* dst) const;

 private:
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    // The attaching thread's count of chunks it had put at the heads of rings,
    // this one included: how long ago the chunk was written, and so whether
    // it is still in that CPU's cache when a head comes back to it. Counted
    // per chunk, not per copy, so that the common append touches no
    // thread-local state.
    uint64_t attached_at = 0;
  };
  // Append() for the rest: several buffers, bytes the peer already holds,
  // a copy that reaches the end of a chunk.
  size_t AppendSpanning(const iovec* iov, int iovcnt, size_t len,
                        uint64_t held);
  // Copies to the head and moves it on; the caller lets go of a chunk this
  // fills. REQUIRES: head_chunk_ != nullptr,
  // len <= kChunkBytes - IndexInChunk(head_).
  void CopyToHeadChunk(const char* src, size_t len) {
    char* dst = head_chunk_->bytes.get() + IndexInChunk(head_);
    if (head_cold_ && len >= kColdCopyMin) {
      ColdCopy(dst, src, len);
    } else {
      std::memcpy(dst, src, len);
    }
    head_ += len;
  }
  // The chunk holding stream offset `offset` (kept or at the head): its place
  // in chunks_, the chunk, its bytes; IndexInChunk() is the byte's index.
  size_t ChunkIndex(uint64_t offset) const {
    return static_cast<size_t>(offset / kChunkBytes - first_chunk_);
  }
  char* ChunkFor(uint64_t offset) const {
    return chunks_[ChunkIndex(offset)].bytes.get();
  }
  // Puts a chunk at the head (head_chunk_): a spare, else a new one.
  void AttachHeadChunk();
  static size_t IndexInChunk(uint64_t offset) {
    return static_cast<size_t>(offset % kChunkBytes);
  }
  void CopyIn(const char* src, size_t len);

  size_t capacity_;
  uint64_t tail_;
  uint64_t head_;
  // chunks_[i] holds offsets [(first_chunk_ + i) * kChunkBytes, ...+ kChunk).
  std::deque<Chunk> chunks_;
  uint64_t first_chunk_;
  // The chunk the next appended byte goes to, null until one is attached
  // (none yet, or the last one is full). A deque keeps its elements where they
  // are as chunks are added at the back and trimmed from the front, and
  // trimming never takes the chunk the head is in.
  Chunk* head_chunk_ = nullptr;
  // Trimmed chunks reused by the next ones needed, the last freed first
  // (cache-warm). ReleaseIdleSpares() frees from the front.
  std::vector<Chunk> spares_;
  // The fewest spares held since the last ReleaseIdleSpares(): that many,
  // the oldest, no append needed.
  size_t spares_low_ = 0;
  // The head's chunk left the cache since it was last written: appends to it
  // bypass the cache (core/cold_copy.h). When the ring keeps megabytes
  // (bytes a peer has not acknowledged, or several busy connections on one
  // thread), a reused chunk is cold and memcpy would read every line before
  // writing it and evict the application's and the kernel's data for bytes
  // nobody reads; when it keeps little, the chunk is warm and memcpy wins.
  bool head_cold_ = false;
  // Shorter appends go through the cache all the same: the fence that makes
  // streaming stores visible costs more than the few lines it spares (a
  // 64-byte ping-pong paid it on every send).
  static constexpr size_t kColdCopyMin = 4096;
  static constexpr size_t kSpareChunks = 2;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_REPLAY_RING_H_
