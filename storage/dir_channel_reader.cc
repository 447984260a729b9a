// The directory backend's ChannelReader: tails the segments of a channel by
// reading past what it has (never trusting a possibly cached file size).

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_channel.h"
#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kInitialFillTarget = 4 << 20;

class DirChannelReader final : public ChannelReader {
 public:
  DirChannelReader(const DirContext& ctx, std::string channel, uint64_t from)
      : ctx_(ctx), ops_(*ctx.ops), dir_(ctx.ChannelDir(channel)), from_(from) {}
  ~DirChannelReader() override { CloseFd(); }

  absl::StatusOr<size_t> ReadAvailable(std::vector<Record>* out,
                                       size_t max_bytes) override;
  void SkipTo(uint64_t stream_offset) override {
    skip_to_ = std::max(skip_to_, stream_offset);
  }

 private:
  std::string SegPath(uint64_t index) const {
    return dir_ + "/" + SegmentFileName(index);
  }
  void CloseFd() {
    if (fd_ >= 0) ops_.Close(fd_).IgnoreError();
    fd_ = -1;
  }
  // Finds the segment to start from; leaves started_ false when the channel
  // has no segment yet.
  absl::Status Start();
  // Opens segment `index` (NotFound when absent) and checks its header.
  absl::StatusOr<int> OpenSegment(uint64_t index, uint64_t* first_offset);
  void UseSegment(uint64_t index, int fd);
  // The segment after this one is gone (trimmed): moves to the oldest later
  // segment when it starts at or below skip_to_ (true); false when there is
  // none, or it would leave a gap the consumer lacks.
  absl::StatusOr<bool> JumpPastTrimmed();
  // Reads what the segment holds past the buffer; sets eof_.
  absl::Status Fill();
  absl::Status Fail(absl::Status s) {
    failed_ = s;
    return s;
  }
  absl::Status Corrupt(uint64_t offset, absl::string_view why) {
    return Fail(absl::Status(
        absl::StatusCode::kDataLoss,
        absl::StrCat(SegPath(index_), " offset ", offset, ": ", why)));
  }

  const DirContext ctx_;
  FileOps& ops_;
  const std::string dir_;
  const uint64_t from_;
  uint64_t skip_to_ = 0;  // the consumer has everything below (SkipTo)
  absl::Status failed_;
  bool started_ = false;
  uint64_t index_ = 0;
  int fd_ = -1;
  std::string buf_;  // file bytes [buf_off_, buf_off_ + buf_.size())
  uint64_t buf_off_ = 0;
  uint64_t pos_ = 0;           // file offset of the next undelivered record
  uint64_t committed_to_ = 0;  // file offset where known batches end
  bool eof_ = false;
  size_t fill_target_ = kInitialFillTarget;
  std::vector<DecodedRecord> records_;
};

absl::StatusOr<int> DirChannelReader::OpenSegment(uint64_t index,
                                                  uint64_t* first_offset) {
  DW_ASSIGN_OR_RETURN(int fd, ops_.Open(SegPath(index), O_RDONLY, 0));
  char header[kSegmentHeaderSize];
  absl::StatusOr<size_t> n = ops_.PRead(fd, header, sizeof(header), 0);
  uint64_t header_index = 0;
  absl::Status s = n.status();
  if (s.ok()) {
    s = DecodeSegmentHeader(absl::string_view(header, *n), &header_index,
                            first_offset);
  }
  if (s.ok() && header_index != index) {
    s = absl::DataLossError(absl::StrCat("header says index ", header_index));
  }
  if (!s.ok()) {
    ops_.Close(fd).IgnoreError();
    return absl::Status(s.code(),
                        absl::StrCat(SegPath(index), ": ", s.message()));
  }
  return fd;
}

void DirChannelReader::UseSegment(uint64_t index, int fd) {
  CloseFd();
  index_ = index;
  fd_ = fd;
  buf_.clear();
  buf_off_ = pos_ = committed_to_ = kSegmentHeaderSize;
  eof_ = false;
}

absl::Status DirChannelReader::Start() {
  absl::StatusOr<std::vector<std::string>> names = ops_.ListDir(dir_);
  if (absl::IsNotFound(names.status())) return absl::OkStatus();
  DW_RETURN_IF_ERROR(names.status());
  const std::vector<uint64_t> indexes = SegmentIndexes(*names, nullptr);
  // The last segment whose first offset is below from_ (else the first).
  int chosen_fd = -1;
  uint64_t chosen = 0;
  for (uint64_t index : indexes) {
    uint64_t first = 0;
    absl::StatusOr<int> fd = OpenSegment(index, &first);
    if (absl::IsNotFound(fd.status())) continue;  // trimmed meanwhile
    if (!fd.ok()) return Fail(fd.status());
    if (chosen_fd >= 0 && first >= from_) {
      ops_.Close(*fd).IgnoreError();
      break;
    }
    if (chosen_fd < 0 && first > std::max(from_, skip_to_) && index > 1) {
      ops_.Close(*fd).IgnoreError();
      return Fail(absl::DataLossError(absl::StrCat(
          dir_, ": stream offset ", from_, " was trimmed (oldest segment ",
          SegmentFileName(index), " starts at ", first, ")")));
    }
    if (chosen_fd >= 0) ops_.Close(chosen_fd).IgnoreError();
    chosen_fd = *fd;
    chosen = index;
  }
  if (chosen_fd < 0) return absl::OkStatus();
  UseSegment(chosen, chosen_fd);
  started_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> DirChannelReader::JumpPastTrimmed() {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, ops_.ListDir(dir_));
  for (uint64_t index : SegmentIndexes(names, nullptr)) {
    if (index <= index_) continue;
    uint64_t first = 0;
    absl::StatusOr<int> fd = OpenSegment(index, &first);
    if (absl::IsNotFound(fd.status())) continue;  // trimmed meanwhile
    if (!fd.ok()) return fd.status();
    if (first > skip_to_) {
      ops_.Close(*fd).IgnoreError();
      return false;
    }
    UseSegment(index, *fd);
    return true;
  }
  return false;
}

absl::Status DirChannelReader::Fill() {
  // Bytes past the last committed batch may still change (a writer rolling
  // back a failed batch, or recovering a torn tail): read them again.
  buf_.resize(std::max(pos_, committed_to_) - buf_off_);
  // Drop consumed bytes once they dominate the buffer.
  if (pos_ - buf_off_ > buf_.size() / 2) {
    buf_.erase(0, pos_ - buf_off_);
    buf_off_ = pos_;
  }
  eof_ = false;
  bool refreshed = false;
  while (buf_.size() - (pos_ - buf_off_) < fill_target_) {
    const size_t have = buf_.size();
    buf_.resize(have + kReadChunk);
    absl::StatusOr<size_t> n =
        ops_.PRead(fd_, buf_.data() + have, kReadChunk, buf_off_ + have);
    buf_.resize(have + (n.ok() ? *n : 0));
    if (!n.ok()) {
      return absl::Status(
          n.status().code(),
          absl::StrCat(SegPath(index_), ": ", n.status().message()));
    }
    if (*n < kReadChunk && ctx_.network_fs && !refreshed) {
      // The client may clamp reads at a cached file size: force it to
      // revalidate, then read again. The size itself is not trusted.
      refreshed = true;
      absl::StatusOr<uint64_t> size = ops_.Revalidate(fd_);
      if (absl::IsNotFound(size.status())) {
        // FUSE asks the server by path: the segment was deleted (trimmed
        // or removed) and can no longer grow. The caller sees whether it
        // has a successor.
        eof_ = true;
        break;
      }
      DW_RETURN_IF_ERROR(size.status());
      continue;
    }
    if (*n < kReadChunk) {
      eof_ = true;
      break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> DirChannelReader::ReadAvailable(std::vector<Record>* out,
                                                       size_t max_bytes) {
  DW_RETURN_IF_ERROR(failed_);
  if (!started_) {
    DW_RETURN_IF_ERROR(Start());
    if (!started_) return 0;
  }
  size_t count = 0;
  size_t bytes = 0;
  bool next_seen = false;  // a later segment exists: this one is complete
  for (;;) {
    DW_RETURN_IF_ERROR(Fill());
    const absl::string_view data =
        absl::string_view(buf_).substr(pos_ - buf_off_);
    const size_t budget = max_bytes > bytes ? max_bytes - bytes : 1;
    const ScanResult scan =
        ScanRecords(data, ctx_.mac_key, std::max<size_t>(budget, 1), &records_);
    committed_to_ = std::max(committed_to_, pos_ + scan.committed_end);
    size_t consumed = 0;
    bool full = false;
    for (size_t i = 0; i < scan.committed_records && !full; ++i) {
      const DecodedRecord& r = records_[i];
      consumed += r.size;
      if (DeliveredFrom(r, from_)) {
        out->push_back(Record{r.header, std::string(r.payload)});
        ++count;
        bytes += r.payload.size() + kRecordHeaderSize;
        full = bytes >= max_bytes;
      }
    }
    pos_ += consumed;
    if (full) return count;
    if (scan.stop == DecodeResult::kInvalid &&
        (!absl::IsDataLoss(scan.error) || !scan.invalid_is_last || next_seen)) {
      return Corrupt(pos_ + (scan.scanned_end - scan.committed_end),
                     scan.error.message());
    }
    if (scan.committed_end > 0) continue;  // more may follow in this segment
    if (!eof_) {
      // A batch larger than the buffer target: read further.
      if (fill_target_ >= 2 * kMaxBatchBytes) {
        return Corrupt(pos_, "no batch end within the largest batch size");
      }
      fill_target_ = std::min<size_t>(fill_target_ * 2, 2 * kMaxBatchBytes);
      continue;
    }
    const bool pending = pos_ < buf_off_ + buf_.size();
    if (next_seen) {
      // Everything of this segment was read after the next one appeared.
      if (pending) {
        return Corrupt(pos_,
                       "torn or uncommitted record at the end of a "
                       "segment that has a successor");
      }
      uint64_t first = 0;
      absl::StatusOr<int> fd = OpenSegment(index_ + 1, &first);
      next_seen = false;
      if (fd.ok()) {
        UseSegment(index_ + 1, *fd);
        continue;
      }
      if (!absl::IsNotFound(fd.status())) return Fail(fd.status());
      absl::StatusOr<bool> jumped = JumpPastTrimmed();  // trimmed meanwhile
      if (!jumped.ok()) return Fail(jumped.status());
      if (*jumped) continue;
      return Fail(absl::DataLossError(
          absl::StrCat(SegPath(index_ + 1), " was trimmed past this reader")));
    }
    uint64_t first = 0;
    absl::StatusOr<int> next = OpenSegment(index_ + 1, &first);
    if (absl::IsNotFound(next.status()) && skip_to_ > 0) {
      // The next segment may be trimmed while a later one exists, when the
      // consumer got those bytes another way.
      absl::StatusOr<bool> jumped = JumpPastTrimmed();
      if (!jumped.ok()) return Fail(jumped.status());
      if (*jumped) continue;
    }
    if (absl::IsNotFound(next.status())) {
      // The writer's tail, unless this segment was deleted under us (the
      // channel removed, or trimmed past this reader): never wait forever.
      // Through FUSE a deleted file's attributes are NotFound.
      absl::StatusOr<uint64_t> links = ops_.LinkCount(fd_);
      if (!links.ok() && !absl::IsNotFound(links.status())) {
        return links.status();
      }
      const bool deleted = !links.ok() || *links == 0;
      if (deleted && !pending) {
        return Fail(absl::NotFoundError(absl::StrCat(
            SegPath(index_),
            " was deleted while being read and has no "
            "successor (channel removed, or trimmed past this reader)")));
      }
      // Nor when the file was cut below what was already read: the writer
      // appends past the cut, and the reader would wait for bytes that never
      // come. A network client's size may be stale: ask the server first.
      if (deleted) return count;
      absl::StatusOr<uint64_t> size = ops_.Size(fd_);
      if (size.ok() && *size < pos_ && ctx_.network_fs)
        size = ops_.Revalidate(fd_);
      if (size.ok() && *size < pos_) {
        return Fail(absl::DataLossError(
            absl::StrCat(SegPath(index_), " was truncated to ", *size,
                         " bytes, below the ", pos_, " this reader had read")));
      }
      return count;
    }
    if (!next.ok()) return Fail(next.status());
    ops_.Close(*next).IgnoreError();
    next_seen = true;  // re-read this segment once more, then move on
  }
}

}  // namespace

std::unique_ptr<ChannelReader> NewDirChannelReader(
    const DirContext& ctx, const std::string& channel,
    uint64_t from_stream_offset) {
  return std::make_unique<DirChannelReader>(ctx, channel, from_stream_offset);
}

}  // namespace diskwire::storage
