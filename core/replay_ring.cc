#include "core/replay_ring.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace diskwire {

ReplayRing::ReplayRing(size_t capacity, uint64_t start_offset)
    : capacity_(capacity),
      tail_(start_offset),
      head_(start_offset),
      first_chunk_(start_offset / kChunkBytes) {}

namespace {

// Chunks this thread put at the heads of rings: the clock of
// Chunk::attached_at.
thread_local uint64_t t_attached = 0;

}  // namespace

void ReplayRing::AttachHeadChunk() {
  const uint64_t now = ++t_attached;
  if (spares_.empty()) {
    // Not initialised: the kernel commits (and zeroes) pages as they are
    // first written, which leaves them in the cache.
    chunks_.push_back(Chunk{std::unique_ptr<char[]>(new char[kChunkBytes])});
    head_cold_ = false;
  } else {
    chunks_.push_back(std::move(spares_.back()));
    spares_.pop_back();
    spares_low_ = std::min(spares_low_, spares_.size());
    // The chunks attached since this one was are (about) the bytes written
    // since it was last written.
    head_cold_ =
        (now - chunks_.back().attached_at - 1) * kChunkBytes >= ColdDistance();
  }
  head_chunk_ = &chunks_.back();
  head_chunk_->attached_at = now;
}

void ReplayRing::CopyIn(const char* src, size_t len) {
  // REQUIRES: len <= Free().
  while (len > 0) {  // src may be null for an empty iovec.
    if (head_chunk_ == nullptr) AttachHeadChunk();
    const size_t n = std::min(len, kChunkBytes - IndexInChunk(head_));
    CopyToHeadChunk(src, n);
    src += n;
    len -= n;
    if (IndexInChunk(head_) == 0) head_chunk_ = nullptr;  // it is full
  }
}

size_t ReplayRing::Append(absl::string_view bytes) {
  size_t n = std::min(bytes.size(), Free());
  CopyIn(bytes.data(), n);
  return n;
}

size_t ReplayRing::AppendSpanning(const iovec* iov, int iovcnt, size_t len,
                                  uint64_t held) {
  held = std::min<uint64_t>(held, head_ + len);
  size_t skip = 0;
  if (held > head_) {
    skip = static_cast<size_t>(held - head_);
    RestartAt(held);
  }
  len -= skip;
  size_t copied = 0;
  for (int i = 0; i < iovcnt && len > 0; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    const size_t n = std::min({iov[i].iov_len - skip, len, Free()});
    CopyIn(static_cast<const char*>(iov[i].iov_base) + skip, n);
    copied += n;
    len -= n;
    skip = 0;
    if (Free() == 0) break;
  }
  if (held > tail_) (void)TrimTo(held);
  return copied;
}

void ReplayRing::Grow(size_t capacity) {
  capacity_ = std::max(capacity_, capacity);
}

void ReplayRing::ReleaseAll() {
  RestartAt(head_);
  spares_.clear();
  spares_low_ = 0;
}

void ReplayRing::ReleaseIdleSpares() {
  const size_t idle =
      spares_low_ > kSpareChunks ? spares_low_ - kSpareChunks : 0;
  spares_.erase(spares_.begin(), spares_.begin() + idle);
  spares_low_ = spares_.size();
}

void ReplayRing::RestartAt(uint64_t offset) {
  for (Chunk& chunk : chunks_) spares_.push_back(std::move(chunk));
  chunks_.clear();
  head_chunk_ = nullptr;
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
    spares_.push_back(std::move(chunks_.front()));
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
