#include "storage/batch_encoder.h"

#include <limits.h>

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"
#include "storage/record_codec.h"

namespace diskwire::storage {

void BatchEncoder::AddScratch(size_t off, size_t len) {
  if (len == 0) return;
  if (!pieces_.empty() && pieces_.back().ext == nullptr &&
      pieces_.back().off + pieces_.back().len == off) {
    pieces_.back().len += len;
  } else {
    pieces_.push_back({nullptr, off, len});
  }
}

void BatchEncoder::Encode(absl::Span<const Record> records,
                          absl::string_view mac_key, uint64_t now_ns) {
  const size_t mac = mac_key.empty() ? 0 : kMacSize;
  scratch_.clear();
  pieces_.clear();
  bytes_ = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    RecordHeader h = r.header;
    if (h.timestamp_ns == 0) h.timestamp_ns = now_ns;
    const bool commit = i + 1 == records.size();
    const size_t at = scratch_.size();
    const size_t len = r.payload.size();
    bytes_ += EncodedRecordSize(len, mac != 0);
    if (len <= kInlinePayload) {
      scratch_.resize(at + kRecordHeaderSize + len + mac);
      char* p = scratch_.data() + at;
      std::memcpy(p + kRecordHeaderSize, r.payload.data(), len);
      EncodeRecord(h, r.payload, commit, mac_key, p,
                   p + kRecordHeaderSize + len);
      AddScratch(at, kRecordHeaderSize + len + mac);
    } else {
      scratch_.resize(at + kRecordHeaderSize + mac);
      char* p = scratch_.data() + at;
      EncodeRecord(h, r.payload, commit, mac_key, p, p + kRecordHeaderSize);
      AddScratch(at, kRecordHeaderSize);
      pieces_.push_back({r.payload.data(), 0, len});
      AddScratch(at + kRecordHeaderSize, mac);
    }
  }
  // Only now: scratch_ no longer moves.
  iov_.clear();
  for (const Piece& piece : pieces_) {
    const char* base = piece.ext ? piece.ext : scratch_.data() + piece.off;
    iov_.push_back({const_cast<char*>(base), piece.len});
  }
}

absl::Status WriteIovecs(FileOps& ops, int fd, std::vector<iovec>& iov) {
  size_t done = 0;  // iovecs fully written
  while (done < iov.size()) {
    const int n =
        static_cast<int>(std::min<size_t>(iov.size() - done, IOV_MAX));
    DW_ASSIGN_OR_RETURN(size_t w, ops.WriteV(fd, &iov[done], n));
    if (w == 0) return absl::DataLossError("write returned 0 bytes");
    while (w > 0 && done < iov.size()) {
      iovec& v = iov[done];
      if (w >= v.iov_len) {
        w -= v.iov_len;
        ++done;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + w;
        v.iov_len -= w;
        w = 0;
      }
    }
    while (done < iov.size() && iov[done].iov_len == 0) ++done;
  }
  return absl::OkStatus();
}

}  // namespace diskwire::storage
