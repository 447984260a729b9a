// File: core/cold_copy.h
// A copy for memory nobody reads soon: the replay ring's chunks, read back
// only after a failover.

#ifndef DISKWIRE_CORE_COLD_COPY_H_
#define DISKWIRE_CORE_COLD_COPY_H_

#include <cstddef>

namespace diskwire {

// Copies `len` bytes from `src` to `dst` as memcpy does, but past the cache
// where the CPU allows it (non-temporal stores on x86-64): no read of each
// destination line before it is written, and no eviction of the lines the
// application and the kernel are working on. Slower than memcpy when `dst`
// is in the cache already. The stores are fenced before it returns, so a
// mutex released after it publishes them as after a memcpy.
void ColdCopy(char* dst, const char* src, size_t len);

// How far back (in bytes this thread copied into replay chunks) a chunk was
// last written for it to have left the cache: a quarter of the CPU's L2
// cache (1 MiB when the C library does not know it), for every byte in a ring
// also passes through the cache in the kernel's copy and in the reader's.
// Measured at four iperf3 streams on loopback, one CPU for both ends: a
// quarter 0.92x of no preload, the whole L2 0.90x, always 0.91x, never 0.82x;
// and one stream on two CPUs, where the ring keeps little and memcpy's warm
// chunks win, a quarter 1.05x, always 1.06x, never 1.10x.
size_t ColdDistance();

}  // namespace diskwire

#endif  // DISKWIRE_CORE_COLD_COPY_H_
