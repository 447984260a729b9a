// File: core/iov.h
// Small helpers over iovec arrays, shared by the send and receive paths.

#ifndef DISKWIRE_CORE_IOV_H_
#define DISKWIRE_CORE_IOV_H_

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstddef>

#include "absl/container/inlined_vector.h"

namespace diskwire {

// The bytes `n` iovecs hold.
inline size_t IovTotal(const iovec* iov, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += iov[i].iov_len;
  return total;
}

// Writes to `out` (room for `n` entries) the iovecs that cover bytes
// [skip, skip + limit) of the `n` iovecs `iov` hold, cut short where they
// end, and returns how many it wrote.
inline size_t IovSlice(const iovec* iov, size_t n, size_t skip, size_t limit,
                       iovec* out) {
  size_t k = 0;
  for (size_t i = 0; i < n && limit > 0; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    const size_t len = std::min(limit, iov[i].iov_len - skip);
    out[k++] = {static_cast<char*>(iov[i].iov_base) + skip, len};
    limit -= len;
    skip = 0;
  }
  return k;
}

// `msg` cut to bytes [skip, skip + limit) of its iovecs (IovSlice), which
// `part` holds: the part of a send that earlier rounds did not take.
inline msghdr MsgSlice(const msghdr& msg, size_t skip, size_t limit,
                       absl::InlinedVector<iovec, 8>* part) {
  part->resize(msg.msg_iovlen);
  msghdr m = msg;
  m.msg_iovlen =
      IovSlice(msg.msg_iov, msg.msg_iovlen, skip, limit, part->data());
  m.msg_iov = part->data();
  return m;
}

}  // namespace diskwire

#endif  // DISKWIRE_CORE_IOV_H_
