// File: storage/batch_encoder.h
// Lays out a batch of records for one writev(): headers, MACs and small
// payloads in one reusable buffer, large payloads referenced in place (the
// batch costs one copy of each large payload: the kernel's).

#ifndef DISKWIRE_STORAGE_BATCH_ENCODER_H_
#define DISKWIRE_STORAGE_BATCH_ENCODER_H_

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "storage/file_ops.h"
#include "storage/record.h"

namespace diskwire::storage {

// Payloads up to this size are copied next to their header.
inline constexpr size_t kInlinePayload = 512;

// Thread-compatible; reuse one per writer to avoid allocations.
class BatchEncoder {
 public:
  // Encodes `records`, the last one with the commit flag, a MAC when
  // `mac_key` is set, and `now_ns` in place of zero timestamps. The iovecs
  // point into this object and into the records' payloads: both must stay
  // unchanged until the iovecs are written.
  void Encode(absl::Span<const Record> records, absl::string_view mac_key,
              uint64_t now_ns);
  std::vector<iovec>& iovecs() { return iov_; }
  size_t bytes() const { return bytes_; }

 private:
  struct Piece {
    const char* ext;  // nullptr: scratch_[off, off + len)
    size_t off;
    size_t len;
  };
  void AddScratch(size_t off, size_t len);

  std::string scratch_;
  std::vector<Piece> pieces_;
  std::vector<iovec> iov_;
  size_t bytes_ = 0;
};

// Writes all of `iov` to `fd`: one writev() per IOV_MAX pieces, continuing
// after short writes. Modifies `iov`. On error some prefix may be written.
absl::Status WriteIovecs(FileOps& ops, int fd, std::vector<iovec>& iov);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_BATCH_ENCODER_H_
