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
      buf_(new char[capacity]),  // Uninitialised on purpose: see header.
      tail_(start_offset),
      head_(start_offset),
      head_index_(IndexOf(start_offset)) {}

void ReplayRing::CopyIn(const char* src, size_t len) {
  // REQUIRES: len <= Free().
  if (len == 0) return;  // src may be null for an empty iovec.
  size_t first = std::min(len, capacity_ - head_index_);
  CopyToRing(buf_.get() + head_index_, src, first);
  if (len > first) CopyToRing(buf_.get(), src + first, len - first);
  head_index_ += len;
  if (head_index_ >= capacity_) head_index_ -= capacity_;
  head_ += len;
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
  if (capacity <= capacity_) return;
  std::unique_ptr<char[]> buf(new char[capacity]);
  const RingView view = *ViewFrom(tail_, size());
  size_t pos = static_cast<size_t>(tail_ % capacity);
  for (absl::string_view piece : {view.first, view.second}) {
    const size_t first = std::min(piece.size(), capacity - pos);
    std::memcpy(buf.get() + pos, piece.data(), first);
    std::memcpy(buf.get(), piece.data() + first, piece.size() - first);
    pos = (pos + piece.size()) % capacity;
  }
  buf_ = std::move(buf);
  capacity_ = capacity;
  head_index_ = IndexOf(head_);
}

absl::Status ReplayRing::TrimTo(uint64_t offset) {
  if (offset > head_) {
    return absl::OutOfRangeError(absl::StrCat(
        "replay ring: cannot trim to offset ", offset, " beyond head ", head_));
  }
  if (offset > tail_) tail_ = offset;
  return absl::OkStatus();
}

absl::StatusOr<RingView> ReplayRing::ViewFrom(uint64_t offset,
                                              size_t max) const {
  if (offset < tail_ || offset > head_) {
    return absl::OutOfRangeError(absl::StrCat("replay ring: offset ", offset,
                                              " outside kept range [", tail_,
                                              ", ", head_, "]"));
  }
  size_t len = static_cast<size_t>(std::min<uint64_t>(head_ - offset, max));
  size_t index = IndexOf(offset);
  size_t first = std::min(len, capacity_ - index);
  RingView view;
  view.first = absl::string_view(buf_.get() + index, first);
  if (len > first) view.second = absl::string_view(buf_.get(), len - first);
  return view;
}

absl::StatusOr<size_t> ReplayRing::CopyOut(uint64_t offset, size_t max,
                                           char* dst) const {
  absl::StatusOr<RingView> view = ViewFrom(offset, max);
  if (!view.ok()) return view.status();
  std::memcpy(dst, view->first.data(), view->first.size());
  if (!view->second.empty()) {
    std::memcpy(dst + view->first.size(), view->second.data(),
                view->second.size());
  }
  return view->size();
}

}  // namespace diskwire
