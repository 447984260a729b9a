#include "core/replay_ring.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace diskwire {
namespace {

// Bulk appends bypass the cache: the ring is read back only after a failover,
// and cache-allocating stores of megabytes would evict the application's data
// (and cost a read of each destination line first).
constexpr size_t kStreamingCopyMin = 16 * 1024;

void CopyToRing(char* dst, const char* src, size_t len) {
#if defined(__x86_64__)
  if (len >= kStreamingCopyMin) {
    size_t head = (16 - (reinterpret_cast<uintptr_t>(dst) & 15)) & 15;
    std::memcpy(dst, src, head);
    dst += head;
    src += head;
    len -= head;
    for (; len >= 64; len -= 64, dst += 64, src += 64) {
      const __m128i* s = reinterpret_cast<const __m128i*>(src);
      __m128i* d = reinterpret_cast<__m128i*>(dst);
      __m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1);
      __m128i c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
      _mm_stream_si128(d, a);
      _mm_stream_si128(d + 1, b);
      _mm_stream_si128(d + 2, c);
      _mm_stream_si128(d + 3, e);
    }
    std::memcpy(dst, src, len);
    _mm_sfence();  // Order the streaming stores before the caller's unlock.
    return;
  }
#endif
  std::memcpy(dst, src, len);
}

}  // namespace

ReplayRing::ReplayRing(size_t capacity, uint64_t start_offset)
    : capacity_(capacity),
      tail_(start_offset),
      head_(start_offset),
      first_chunk_(start_offset / kChunkBytes) {}

void ReplayRing::CopyIn(const char* src, size_t len) {
  // REQUIRES: len <= Free().
  while (len > 0) {  // src may be null for an empty iovec.
    const size_t index = IndexInChunk(head_);
    if (head_ / kChunkBytes - first_chunk_ == chunks_.size()) {
      // Chunks are not initialised: the kernel commits pages as they are
      // written.
      chunks_.push_back(spare_ != nullptr ? std::move(spare_)
                                          : Chunk(new char[kChunkBytes]));
    }
    const size_t n = std::min(len, kChunkBytes - index);
    CopyToRing(ChunkFor(head_) + index, src, n);
    src += n;
    len -= n;
    head_ += n;
  }
}

size_t ReplayRing::Append(absl::string_view bytes) {
  size_t n = std::min(bytes.size(), Free());
  CopyIn(bytes.data(), n);
  return n;
}

size_t ReplayRing::Append(const iovec* iov, int iovcnt) {
  size_t copied = 0;
  for (int i = 0; i < iovcnt; ++i) {
    size_t n = std::min(iov[i].iov_len, Free());
    CopyIn(static_cast<const char*>(iov[i].iov_base), n);
    copied += n;
    if (n < iov[i].iov_len) break;
  }
  return copied;
}

void ReplayRing::Grow(size_t capacity) {
  capacity_ = std::max(capacity_, capacity);
}

void ReplayRing::RestartAt(uint64_t offset) {
  chunks_.clear();
  tail_ = head_ = offset;
  first_chunk_ = offset / kChunkBytes;
}

absl::Status ReplayRing::TrimTo(uint64_t offset) {
  if (offset > head_) {
    return absl::OutOfRangeError(absl::StrCat(
        "replay ring: cannot trim to offset ", offset, " beyond head ", head_));
  }
  if (offset <= tail_) return absl::OkStatus();
  tail_ = offset;
  // Chunks wholly below the tail go; the chunk the head writes into next
  // stays even when empty.
  while (!chunks_.empty() && (first_chunk_ + 1) * kChunkBytes <= tail_ &&
         (first_chunk_ + 1) * kChunkBytes <= head_) {
    spare_ = std::move(chunks_.front());
    chunks_.pop_front();
    ++first_chunk_;
  }
  if (chunks_.empty()) first_chunk_ = head_ / kChunkBytes;
  return absl::OkStatus();
}

absl::StatusOr<RingView> ReplayRing::ViewFrom(uint64_t offset,
                                              size_t max) const {
  if (offset < tail_ || offset > head_) {
    return absl::OutOfRangeError(absl::StrCat("replay ring: offset ", offset,
                                              " outside kept range [", tail_,
                                              ", ", head_, "]"));
  }
  RingView view;
  size_t len = static_cast<size_t>(std::min<uint64_t>(head_ - offset, max));
  if (len == 0) return view;
  const size_t index = IndexInChunk(offset);
  const size_t first = std::min(len, kChunkBytes - index);
  view.first = absl::string_view(ChunkFor(offset) + index, first);
  len -= first;
  if (len > 0) {
    view.second =
        absl::string_view(ChunkFor(offset + first), std::min(len, kChunkBytes));
  }
  return view;
}

absl::StatusOr<size_t> ReplayRing::CopyOut(uint64_t offset, size_t max,
                                           char* dst) const {
  size_t copied = 0;
  for (;;) {
    absl::StatusOr<RingView> view = ViewFrom(offset + copied, max - copied);
    if (!view.ok()) return view.status();
    if (view->size() == 0) return copied;
    for (absl::string_view piece : {view->first, view->second}) {
      std::memcpy(dst + copied, piece.data(), piece.size());
      copied += piece.size();
    }
  }
}

}  // namespace diskwire
