// The LUN channel writer (lun_channel.h) and the extent scan its recovery
// shares with the reader.

#include "storage/lun_channel.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_channel.h"
#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

class LunChannelWriter final : public ChannelWriter {
 public:
  LunChannelWriter(LunStore* store, std::string channel,
                   const WriterOptions& options)
      : store_(*store),
        dev_(store->device()),
        g_(store->geometry()),
        channel_(std::move(channel)),
        options_(options),
        capacity_(g_.extent_bytes - dev_.align()) {}
  ~LunChannelWriter() override { Close().IgnoreError(); }

  absl::Status Open();
  absl::Status Append(absl::Span<const Record> records) override;
  absl::Status Sync() override;
  absl::Status TrimBelow(uint64_t stream_offset) override;
  absl::Status Close() override;
  std::optional<RecordHeader> last_record() const override { return last_; }
  uint64_t end_offset() const override { return last_end_; }
  const std::vector<std::string>& recovery_notes() const override {
    return notes_;
  }

 private:
  struct Extent {
    LunExtent at;
    std::optional<uint64_t> max_end;  // unknown for extents found on open
  };
  uint64_t Offset(const Extent& e, uint64_t pos) const {
    return g_.extent_offset(slot_, e.at.index) + pos;
  }
  absl::Status Rotate(uint64_t first_offset);
  // One frame of `records` (`bytes` encoded) at pos_; a seal when empty.
  absl::Status WriteFrame(absl::Span<const Record> records, uint64_t bytes,
                          uint64_t now);

  LunStore& store_;
  LunDevice& dev_;
  const LunGeometry& g_;
  const std::string channel_;
  const WriterOptions options_;
  const uint64_t capacity_;  // frame bytes an extent takes; a seal fits after
  uint32_t slot_ = 0;
  std::vector<Extent> extents_;  // by segment; back() is the active one
  uint64_t pos_ = 0;             // where the next frame goes in back()
  bool sealed_ = false;          // back() is sealed: rotate before appending
  std::optional<RecordHeader> last_;
  uint64_t last_end_ = 0;
  std::vector<std::string> notes_;
  bool opened_ = false;
  bool closed_ = false;
  absl::Time last_sync_ = absl::Now();
  AlignedBytes frame_;
};

absl::Status LunChannelWriter::Open() {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtent> found,
                      store_.OpenChannel(channel_, &slot_));
  opened_ = true;
  for (LunExtent& e : found) extents_.push_back({std::move(e), std::nullopt});
  if (extents_.empty()) {
    DW_ASSIGN_OR_RETURN(LunExtent first, store_.Allocate(channel_, 1, 0));
    extents_.push_back({std::move(first), 0});
    return absl::OkStatus();
  }
  // Recovery: find where the active extent's frames end.
  Extent& active = extents_.back();
  DW_ASSIGN_OR_RETURN(std::string bytes,
                      dev_.Read(Offset(active, 0), g_.extent_bytes));
  const LunExtentScan scan = ScanLunExtent(bytes, active.at.entry.generation,
                                           dev_.align(), store_.mac_key());
  pos_ = scan.end;
  sealed_ = scan.sealed;
  active.max_end = scan.max_end;
  last_ = scan.last;
  last_end_ = scan.last_end;
  if (!scan.note.empty()) {
    notes_.push_back(absl::StrCat(dev_.path(), " extent ", active.at.index,
                                  " of channel ", channel_, ": ", scan.note,
                                  "; cut at ", pos_));
    // Nothing of the torn tail may ever look like a frame again.
    DW_RETURN_IF_ERROR(dev_.Write(Offset(active, pos_),
                                  std::string(g_.extent_bytes - pos_, '\0')));
  }
  return absl::OkStatus();
}

absl::Status LunChannelWriter::WriteFrame(absl::Span<const Record> records,
                                          uint64_t bytes, uint64_t now) {
  Extent& active = extents_.back();
  const uint64_t total = RoundUpTo(kLunFrameHeaderSize + bytes, dev_.align());
  if (!frame_.Resize(total))
    return absl::ResourceExhaustedError("out of memory");
  // Records encoded in place, in the buffer the device writes from: the
  // payload's only copy.
  char* p = frame_.data() + kLunFrameHeaderSize;
  for (size_t k = 0; k < records.size(); ++k) {
    RecordHeader h = records[k].header;
    if (h.timestamp_ns == 0) h.timestamp_ns = now;
    const absl::string_view payload = records[k].payload;
    EncodeRecord(h, payload, k + 1 == records.size(), store_.mac_key(), p,
                 p + kRecordHeaderSize + payload.size());
    std::memcpy(p + kRecordHeaderSize, payload.data(), payload.size());
    p += EncodedRecordSize(payload.size(), !store_.mac_key().empty());
  }
  std::memset(p, 0, frame_.data() + total - p);
  EncodeFrameHeader(
      LunFrame{static_cast<uint32_t>(bytes), active.at.entry.generation,
               static_cast<uint32_t>(pos_)},
      frame_.data());
  DW_RETURN_IF_ERROR(dev_.Write(Offset(active, pos_), frame_.view()));
  pos_ += total;
  return absl::OkStatus();
}

absl::Status LunChannelWriter::Rotate(uint64_t first_offset) {
  if (!sealed_) {
    DW_RETURN_IF_ERROR(WriteFrame({}, 0, 0));
    sealed_ = true;
  }
  DW_ASSIGN_OR_RETURN(
      LunExtent next,
      store_.Allocate(channel_, extents_.back().at.entry.segment + 1,
                      first_offset));
  extents_.push_back({std::move(next), 0});
  pos_ = 0;
  sealed_ = false;
  return absl::OkStatus();
}

absl::Status LunChannelWriter::Append(absl::Span<const Record> records) {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  if (records.empty()) return absl::OkStatus();
  uint64_t prev = last_ ? last_->stream_offset : 0;
  for (const Record& r : records) {
    if (r.header.stream_offset < prev) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream offset ", r.header.stream_offset,
                       " below the previous record's ", prev));
    }
    if (r.payload.size() > kMaxPayloadSize) {
      return absl::InvalidArgumentError("record payload too large");
    }
    if (RoundUpTo(
            kLunFrameHeaderSize +
                EncodedRecordSize(r.payload.size(), !store_.mac_key().empty()),
            dev_.align()) > capacity_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a record of ", r.payload.size(), " bytes does not fit an extent of ",
          g_.extent_bytes, " bytes (", dev_.path(), ")"));
    }
    prev = r.header.stream_offset;
  }
  const uint64_t now = LunNowNs();
  const bool mac = !store_.mac_key().empty();
  // Groups of whole records that fit the rest of an extent, one frame each.
  size_t i = 0;
  while (i < records.size()) {
    if (sealed_ ||
        pos_ + RoundUpTo(kLunFrameHeaderSize +
                             EncodedRecordSize(records[i].payload.size(), mac),
                         dev_.align()) >
            capacity_) {
      DW_RETURN_IF_ERROR(Rotate(records[i].header.stream_offset));
    }
    size_t j = i;
    uint64_t bytes = 0;
    while (j < records.size()) {
      const uint64_t more = EncodedRecordSize(records[j].payload.size(), mac);
      if (pos_ + RoundUpTo(kLunFrameHeaderSize + bytes + more, dev_.align()) >
          capacity_) {
        break;
      }
      bytes += more;
      ++j;
    }
    uint64_t max_end = extents_.back().max_end.value_or(0);
    for (size_t k = i; k < j; ++k) {
      max_end = std::max(
          max_end, RecordEnd(records[k].header, records[k].payload.size()));
    }
    DW_RETURN_IF_ERROR(WriteFrame(records.subspan(i, j - i), bytes, now));
    extents_.back().max_end = max_end;
    last_ = records[j - 1].header;
    if (last_->timestamp_ns == 0) last_->timestamp_ns = now;
    last_end_ = RecordEnd(*last_, records[j - 1].payload.size());
    i = j;
  }
  if (options_.durability == Durability::kEveryBatch ||
      (options_.durability == Durability::kInterval &&
       absl::Now() - last_sync_ >= options_.sync_interval)) {
    return Sync();
  }
  return absl::OkStatus();
}

absl::Status LunChannelWriter::Sync() {
  last_sync_ = absl::Now();
  return dev_.Sync();
}

absl::Status LunChannelWriter::TrimBelow(uint64_t stream_offset) {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  for (size_t k = 0; k + 1 < extents_.size();) {
    Extent& e = extents_[k];
    if (!e.max_end) {
      DW_ASSIGN_OR_RETURN(std::string bytes,
                          dev_.Read(Offset(e, 0), g_.extent_bytes));
      e.max_end = ScanLunExtent(bytes, e.at.entry.generation, dev_.align(),
                                store_.mac_key())
                      .max_end;
    }
    if (*e.max_end > stream_offset) {
      ++k;
      continue;
    }
    DW_RETURN_IF_ERROR(store_.Free(e.at.index));
    extents_.erase(extents_.begin() + k);
  }
  return absl::OkStatus();
}

absl::Status LunChannelWriter::Close() {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  closed_ = true;
  if (opened_) store_.CloseChannel(channel_);
  return absl::OkStatus();
}

}  // namespace

LunExtentScan ScanLunExtent(absl::string_view bytes, uint64_t generation,
                            uint32_t align, absl::string_view mac_key) {
  LunExtentScan s;
  std::vector<DecodedRecord> records;
  uint64_t pos = 0;
  while (pos + kLunFrameHeaderSize <= bytes.size()) {
    std::optional<LunFrame> f =
        DecodeFrameHeader(bytes.substr(pos, kLunFrameHeaderSize));
    if (!f || f->generation != generation || f->position != pos) {
      if (bytes.substr(pos, kLunFrameHeaderSize) !=
          std::string(kLunFrameHeaderSize, '\0')) {
        s.note = absl::StrCat("no valid frame at ", pos);
      }
      break;
    }
    if (f->length == 0) {
      s.sealed = true;
      s.end = pos + align;
      return s;
    }
    const uint64_t total = RoundUpTo(kLunFrameHeaderSize + f->length, align);
    if (pos + total > bytes.size()) {
      s.note = absl::StrCat("frame at ", pos, " runs past the extent");
      break;
    }
    const absl::string_view recs =
        bytes.substr(pos + kLunFrameHeaderSize, f->length);
    const ScanResult scan =
        ScanRecords(recs, mac_key, recs.size() + 1, &records);
    if (scan.committed_end != recs.size()) {
      s.note = absl::StrCat("torn frame at ", pos);
      break;
    }
    for (size_t k = 0; k < scan.committed_records; ++k) {
      const uint64_t end =
          RecordEnd(records[k].header, records[k].payload.size());
      s.max_end = std::max(s.max_end, end);
      s.last = records[k].header;
      s.last_end = end;
    }
    pos += total;
    s.end = pos;
  }
  return s;
}

absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenLunChannelWriter(
    LunStore* store, const std::string& channel, const WriterOptions& options) {
  auto w = std::make_unique<LunChannelWriter>(store, channel, options);
  DW_RETURN_IF_ERROR(w->Open());
  return w;
}

}  // namespace diskwire::storage
