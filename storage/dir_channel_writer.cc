// The directory backend's ChannelWriter: lock, recovery, batched appends,
// rotation, durability and trimming.

#include <fcntl.h>
#include <time.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/batch_encoder.h"
#include "storage/dir_channel.h"
#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

absl::Status WithContext(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

// Reads `fd` from `offset` to the end of file.
absl::StatusOr<std::string> ReadToEnd(FileOps& ops, int fd, uint64_t offset) {
  std::string data;
  constexpr size_t kChunk = 1 << 20;
  for (;;) {
    const size_t have = data.size();
    data.resize(have + kChunk);
    DW_ASSIGN_OR_RETURN(
        size_t n, ops.PRead(fd, data.data() + have, kChunk, offset + have));
    data.resize(have + n);
    if (n == 0) return data;
  }
}

class DirChannelWriter final : public ChannelWriter {
 public:
  DirChannelWriter(const DirContext& ctx, std::string channel,
                   const WriterOptions& options)
      : ctx_(ctx),
        ops_(*ctx.ops),
        channel_(std::move(channel)),
        dir_(ctx.ChannelDir(channel_)),
        options_(options) {}
  ~DirChannelWriter() override { Close().IgnoreError(); }

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
  struct Segment {
    uint64_t index;
    uint64_t first_offset;
    std::optional<uint64_t> max_end;  // unknown for segments found on open
  };

  std::string SegPath(uint64_t index) const {
    return dir_ + "/" + SegmentFileName(index);
  }
  // Scans the last segment, cuts a torn or uncommitted tail, finds the last
  // record, and reopens it for appending.
  absl::Status Recover();
  // Reads segment `index` whole; validates its header.
  absl::StatusOr<std::string> ReadSegment(uint64_t index, int fd);
  absl::Status Rotate(uint64_t first_offset);
  absl::Status Validate(absl::Span<const Record> records, size_t* bytes) const;
  absl::StatusOr<uint64_t> MaxEnd(Segment& seg);

  const DirContext ctx_;
  FileOps& ops_;
  const std::string channel_;
  const std::string dir_;
  const WriterOptions options_;
  int lock_fd_ = -1;
  int fd_ = -1;        // active segment, O_APPEND; -1 before the first
  uint64_t size_ = 0;  // bytes in the active segment
  std::vector<Segment> segments_;  // ascending; back() is the active one
  std::optional<RecordHeader> last_;
  uint64_t last_end_ = 0;  // stream end of the last record
  std::vector<std::string> notes_;
  bool broken_ = false;
  bool closed_ = false;
  absl::Time last_sync_ = absl::Now();
  BatchEncoder encoder_;
};

absl::Status DirChannelWriter::Open() {
  DW_RETURN_IF_ERROR(ops_.MakeDir(ctx_.root + "/" + kChannelsDir));
  DW_RETURN_IF_ERROR(ops_.MakeDir(dir_));
  DW_ASSIGN_OR_RETURN(
      lock_fd_, ops_.Open(dir_ + "/" + kLockFile, O_RDWR | O_CREAT, 0666));
  absl::Status locked = ops_.Lock(lock_fd_);
  if (absl::IsFailedPrecondition(locked)) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", channel_, " already has a writer (", dir_, "/",
                     kLockFile, " is locked)"));
  }
  DW_RETURN_IF_ERROR(locked);
  return Recover();
}

absl::StatusOr<std::string> DirChannelWriter::ReadSegment(uint64_t index,
                                                          int fd) {
  DW_ASSIGN_OR_RETURN(std::string data, ReadToEnd(ops_, fd, 0));
  uint64_t header_index = 0, first = 0;
  DW_RETURN_IF_ERROR(WithContext(
      DecodeSegmentHeader(data, &header_index, &first), SegPath(index)));
  if (header_index != index) {
    return absl::DataLossError(
        absl::StrCat(SegPath(index), ": header says index ", header_index));
  }
  return data;
}

absl::Status DirChannelWriter::Recover() {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, ops_.ListDir(dir_));
  std::vector<std::string> foreign;
  const std::vector<uint64_t> indexes = SegmentIndexes(names, &foreign);
  for (const std::string& f : foreign) {
    notes_.push_back(absl::StrCat("ignored foreign file ", dir_, "/", f));
  }
  for (uint64_t index : indexes) {
    char header[kSegmentHeaderSize];
    DW_ASSIGN_OR_RETURN(int fd, ops_.Open(SegPath(index), O_RDONLY, 0));
    absl::StatusOr<size_t> n = ops_.PRead(fd, header, sizeof(header), 0);
    ops_.Close(fd).IgnoreError();
    DW_RETURN_IF_ERROR(n.status());
    uint64_t header_index = 0, first = 0;
    DW_RETURN_IF_ERROR(
        WithContext(DecodeSegmentHeader(absl::string_view(header, *n),
                                        &header_index, &first),
                    SegPath(index)));
    segments_.push_back({index, first, std::nullopt});
  }
  if (segments_.empty()) return absl::OkStatus();

  // The active segment: cut what a dead writer left half-written.
  const uint64_t active = segments_.back().index;
  DW_ASSIGN_OR_RETURN(fd_, ops_.Open(SegPath(active), O_RDWR | O_APPEND, 0));
  DW_ASSIGN_OR_RETURN(std::string data, ReadSegment(active, fd_));
  std::vector<DecodedRecord> records;
  absl::string_view body = absl::string_view(data).substr(kSegmentHeaderSize);
  ScanResult scan = ScanRecords(body, ctx_.mac_key, SIZE_MAX, &records);
  if (scan.stop == DecodeResult::kInvalid && !scan.invalid_is_last) {
    return absl::DataLossError(absl::StrCat(
        SegPath(active), " offset ", kSegmentHeaderSize + scan.scanned_end,
        ": ", scan.error.message(), " (corrupt record before the tail)"));
  }
  size_ = kSegmentHeaderSize + scan.committed_end;
  if (size_ < data.size()) {
    notes_.push_back(absl::StrCat("discarded ", data.size() - size_,
                                  " bytes of torn tail of ", SegPath(active),
                                  " at offset ", size_));
    DW_RETURN_IF_ERROR(ops_.Truncate(fd_, size_));
    DW_RETURN_IF_ERROR(ops_.Sync(fd_));
  }
  // The last record: in the active segment, or (if it holds none) earlier.
  for (size_t i = segments_.size(); i-- > 0 && !last_;) {
    if (i + 1 != segments_.size()) {
      DW_ASSIGN_OR_RETURN(int fd,
                          ops_.Open(SegPath(segments_[i].index), O_RDONLY, 0));
      absl::StatusOr<std::string> older = ReadSegment(segments_[i].index, fd);
      ops_.Close(fd).IgnoreError();
      DW_RETURN_IF_ERROR(older.status());
      data = *std::move(older);
      body = absl::string_view(data).substr(kSegmentHeaderSize);
      scan = ScanRecords(body, ctx_.mac_key, SIZE_MAX, &records);
    }
    if (scan.committed_records > 0) {
      const DecodedRecord& r = records[scan.committed_records - 1];
      last_ = r.header;
      last_end_ = RecordEnd(r.header, r.payload.size());
    }
  }
  return absl::OkStatus();
}

absl::Status DirChannelWriter::Validate(absl::Span<const Record> records,
                                        size_t* bytes) const {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  if (broken_) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", channel_,
                     " writer is broken after a failed rollback or "
                     "fsync; reopen it"));
  }
  uint64_t prev = last_ ? last_->stream_offset : 0;
  const size_t mac = ctx_.mac_key.empty() ? 0 : kMacSize;
  *bytes = 0;
  for (const Record& r : records) {
    const RecordHeader& h = r.header;
    if (static_cast<uint8_t>(h.type) == 0 ||
        static_cast<uint8_t>(h.type) > kMaxRecordType || h.direction > 1 ||
        r.payload.size() > kMaxPayloadSize) {
      return absl::InvalidArgumentError(
          "record with bad type, direction or payload size");
    }
    if (h.stream_offset < prev) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream offset ", h.stream_offset, " below previous ",
                       prev, " in channel ", channel_));
    }
    prev = h.stream_offset;
    *bytes += kRecordHeaderSize + r.payload.size() + mac;
  }
  if (*bytes > kMaxBatchBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch of ", *bytes, " bytes exceeds ", kMaxBatchBytes));
  }
  return absl::OkStatus();
}

absl::Status DirChannelWriter::Rotate(uint64_t first_offset) {
  const bool durable = options_.durability != Durability::kNone;
  if (fd_ >= 0) {
    if (durable) DW_RETURN_IF_ERROR(ops_.Sync(fd_));
    ops_.Close(fd_).IgnoreError();
    fd_ = -1;
  }
  const uint64_t index = segments_.empty() ? 1 : segments_.back().index + 1;
  // Publish the segment with its header complete: temp file, then rename.
  const std::string tmp = absl::StrCat(dir_, "/.tmp-", SegmentFileName(index));
  DW_ASSIGN_OR_RETURN(
      int fd, ops_.Open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0666));
  char header[kSegmentHeaderSize];
  EncodeSegmentHeader(index, first_offset, header);
  absl::Status s =
      WriteAll(ops_, fd, absl::string_view(header, sizeof(header)), tmp);
  if (s.ok() && durable) s = ops_.Sync(fd);
  if (s.ok()) s = ops_.Rename(tmp, SegPath(index));
  if (s.ok() && durable) s = ops_.SyncDir(dir_);
  if (!s.ok()) {
    ops_.Close(fd).IgnoreError();
    ops_.Unlink(tmp).IgnoreError();
    return s;
  }
  if (!segments_.empty()) segments_.back().max_end = last_end_;
  segments_.push_back({index, first_offset, std::nullopt});
  fd_ = fd;
  size_ = kSegmentHeaderSize;
  return absl::OkStatus();
}

absl::Status DirChannelWriter::Append(absl::Span<const Record> records) {
  size_t bytes = 0;
  DW_RETURN_IF_ERROR(Validate(records, &bytes));
  if (records.empty()) return absl::OkStatus();
  if (fd_ < 0 ||
      (size_ > kSegmentHeaderSize && size_ + bytes > options_.segment_bytes)) {
    DW_RETURN_IF_ERROR(Rotate(records.front().header.stream_offset));
  }
  encoder_.Encode(records, ctx_.mac_key, RealtimeNs());
  const absl::Status s = WriteIovecs(ops_, fd_, encoder_.iovecs());
  if (!s.ok()) {
    // Take back the partial batch; readers never delivered it (no commit).
    const absl::Status undo = ops_.Truncate(fd_, size_);
    if (!undo.ok()) broken_ = true;
    return WithContext(
        s, absl::StrCat("append to ", SegPath(segments_.back().index)));
  }
  size_ += bytes;
  const Record& last = records.back();
  last_ = last.header;
  last_end_ = RecordEnd(last.header, last.payload.size());
  if (options_.durability == Durability::kEveryBatch ||
      (options_.durability == Durability::kInterval &&
       absl::Now() - last_sync_ >= options_.sync_interval)) {
    return Sync();
  }
  return absl::OkStatus();
}

absl::Status DirChannelWriter::Sync() {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  last_sync_ = absl::Now();
  if (fd_ < 0) return absl::OkStatus();
  const absl::Status s = ops_.Sync(fd_);
  if (!s.ok()) broken_ = true;  // after a failed fsync the page cache lies
  return s;
}

absl::StatusOr<uint64_t> DirChannelWriter::MaxEnd(Segment& seg) {
  if (seg.max_end) return *seg.max_end;
  DW_ASSIGN_OR_RETURN(int fd, ops_.Open(SegPath(seg.index), O_RDONLY, 0));
  absl::StatusOr<std::string> data = ReadSegment(seg.index, fd);
  ops_.Close(fd).IgnoreError();
  DW_RETURN_IF_ERROR(data.status());
  std::vector<DecodedRecord> records;
  const ScanResult scan =
      ScanRecords(absl::string_view(*data).substr(kSegmentHeaderSize),
                  ctx_.mac_key, SIZE_MAX, &records);
  uint64_t end = seg.first_offset;
  for (size_t i = 0; i < scan.committed_records; ++i) {
    end =
        std::max(end, RecordEnd(records[i].header, records[i].payload.size()));
  }
  seg.max_end = end;
  return end;
}

absl::Status DirChannelWriter::TrimBelow(uint64_t stream_offset) {
  if (closed_) return absl::FailedPreconditionError("channel writer closed");
  size_t removed = 0;
  // Oldest first, never the active one, so readers never meet a gap.
  while (removed + 1 < segments_.size()) {
    DW_ASSIGN_OR_RETURN(uint64_t end, MaxEnd(segments_[removed]));
    if (end > stream_offset) break;
    DW_RETURN_IF_ERROR(ops_.Unlink(SegPath(segments_[removed].index)));
    ++removed;
  }
  segments_.erase(segments_.begin(), segments_.begin() + removed);
  return absl::OkStatus();
}

absl::Status DirChannelWriter::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  absl::Status s;
  if (fd_ >= 0) {
    if (options_.durability != Durability::kNone && !broken_)
      s = ops_.Sync(fd_);
    ops_.Close(fd_).IgnoreError();
  }
  if (lock_fd_ >= 0) ops_.Close(lock_fd_).IgnoreError();  // releases the lock
  fd_ = lock_fd_ = -1;
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenDirChannelWriter(
    const DirContext& ctx, const std::string& channel,
    const WriterOptions& options) {
  auto writer = std::make_unique<DirChannelWriter>(ctx, channel, options);
  DW_RETURN_IF_ERROR(writer->Open());
  return writer;
}

}  // namespace diskwire::storage
