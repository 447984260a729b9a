// File: core/iov.h
// Small helpers over iovec arrays, shared by the send and receive paths.

#ifndef DISKWIRE_CORE_IOV_H_
#define DISKWIRE_CORE_IOV_H_

#include <sys/uio.h>

#include <cstddef>

namespace diskwire {

// The bytes `n` iovecs hold.
inline size_t IovTotal(const iovec* iov, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += iov[i].iov_len;
  return total;
}

}  // namespace diskwire

#endif  // DISKWIRE_CORE_IOV_H_
