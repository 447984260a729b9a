#include "core/reassembly.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace diskwire {

Reassembly::Reassembly(uint64_t start_offset, size_t window)
    : window_(window), next_offset_(start_offset) {}

uint64_t Reassembly::contiguous_end() const {
  uint64_t end = next_offset_;
  for (const auto& p : pieces_) {
    if (p.first > end) break;
    end = End(p);
  }
  return end;
}

absl::Status Reassembly::Offer(uint64_t offset, absl::string_view bytes) {
  if (bytes.size() > UINT64_MAX - offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reassembly: piece at offset ", offset, " of ", bytes.size(),
        " bytes runs past the end of the offset space"));
  }
  const uint64_t end = offset + bytes.size();
  if (end <= next_offset_) {  // All delivered already (or empty).
    duplicates_ += bytes.size();
    return absl::OkStatus();
  }
  if (end > window_end()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "reassembly: piece [", offset, ", ", end, ") ends beyond the window [",
        next_offset_, ", ", window_end(), ")"));
  }
  const uint64_t start = std::max(offset, next_offset_);

  // First pass: every byte we already hold must match.
  auto it = pieces_.upper_bound(start);
  if (it != pieces_.begin()) --it;
  for (; it != pieces_.end() && it->first < end; ++it) {
    uint64_t lo = std::max(start, it->first);
    uint64_t hi = std::min(end, End(*it));
    if (lo >= hi) continue;
    if (std::memcmp(it->second.data.data() + (lo - it->first),
                    bytes.data() + (lo - offset), hi - lo) != 0) {
      return absl::DataLossError(
          absl::StrCat("reassembly: bytes offered at [", lo, ", ", hi,
                       ") differ from the bytes already held there"));
    }
  }

  // Second pass: keep the gaps.
  const size_t buffered_before = buffered_;
  uint64_t cur = start;
  it = pieces_.upper_bound(cur);
  if (it != pieces_.begin()) {
    cur = std::max(cur, End(*std::prev(it)));
  }
  while (cur < end) {
    it = pieces_.lower_bound(cur);
    if (it != pieces_.end() && it->first == cur) {
      cur = End(*it);
      continue;
    }
    uint64_t gap_end = it == pieces_.end() ? end : std::min(end, it->first);
    pieces_.emplace_hint(
        it, cur,
        Piece{std::string(bytes.substr(cur - offset, gap_end - cur)), 0});
    buffered_ += gap_end - cur;
    cur = gap_end;
  }
  duplicates_ += bytes.size() - (buffered_ - buffered_before);
  return absl::OkStatus();
}

absl::string_view Reassembly::Peek() const {
  if (pieces_.empty()) return {};
  const auto& front = *pieces_.begin();
  if (front.first + front.second.skip != next_offset_) return {};
  return absl::string_view(front.second.data).substr(front.second.skip);
}

void Reassembly::Consume(size_t n) {
  if (n == 0) return;
  auto front = pieces_.begin();
  front->second.skip += n;
  next_offset_ += n;
  buffered_ -= n;
  if (front->second.skip == front->second.data.size()) pieces_.erase(front);
}

size_t Reassembly::TakeReady(size_t max, char* out) {
  size_t taken = 0;
  while (taken < max) {
    absl::string_view ready = Peek();
    if (ready.empty()) break;
    size_t n = std::min(ready.size(), max - taken);
    std::memcpy(out + taken, ready.data(), n);
    Consume(n);
    taken += n;
  }
  return taken;
}

size_t Reassembly::TakeReady(size_t max, std::string* out) {
  size_t taken = 0;
  while (taken < max) {
    absl::string_view ready = Peek();
    if (ready.empty()) break;
    size_t n = std::min(ready.size(), max - taken);
    out->append(ready.data(), n);
    Consume(n);
    taken += n;
  }
  return taken;
}

}  // namespace diskwire
