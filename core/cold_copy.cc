#include "core/cold_copy.h"

#include <unistd.h>

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace diskwire {

void ColdCopy(char* dst, const char* src, size_t len) {
#if defined(__x86_64__)
  // Whole 64-byte lines go with streaming stores; the ragged ends (and a copy
  // too short to hold a line) with memcpy.
  const size_t head = (64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63;
  if (len < head + 64) {
    std::memcpy(dst, src, len);
    return;
  }
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  len -= head;
  for (; len >= 64; len -= 64, dst += 64, src += 64) {
    const __m128i* s = reinterpret_cast<const __m128i*>(src);
    __m128i* d = reinterpret_cast<__m128i*>(dst);
    const __m128i a = _mm_loadu_si128(s);
    const __m128i b = _mm_loadu_si128(s + 1);
    const __m128i c = _mm_loadu_si128(s + 2);
    const __m128i e = _mm_loadu_si128(s + 3);
    _mm_stream_si128(d, a);
    _mm_stream_si128(d + 1, b);
    _mm_stream_si128(d + 2, c);
    _mm_stream_si128(d + 3, e);
  }
  std::memcpy(dst, src, len);
  // Streaming stores are weakly ordered, even against a later unlock.
  _mm_sfence();
#else
  std::memcpy(dst, src, len);
#endif
}

size_t ColdDistance() {
  static const size_t distance = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return (l2 > 0 ? static_cast<size_t>(l2) : size_t{1} << 20) / 4;
  }();
  return distance;
}

}  // namespace diskwire
