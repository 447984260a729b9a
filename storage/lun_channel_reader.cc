// The LUN channel reader (lun_channel.h): tails a chain of extents with
// adaptive O_DIRECT reads, following seals to the next segment.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/lun_channel.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

// How often a reader at the end of its extent checks that the extent is
// still its channel's (removal, trimming, a slot taken over).
constexpr absl::Duration kRecheck = absl::Seconds(1);
// How often a reader whose channel does not exist yet looks for it.
constexpr absl::Duration kSearchInterval = absl::Milliseconds(10);
// Read ahead this much while frames keep coming; one block when idle.
constexpr size_t kStreamingRead = 256 << 10;

class LunChannelReader final : public ChannelReader {
 public:
  LunChannelReader(LunStore* store, std::string channel, uint64_t from)
      : store_(*store),
        dev_(store->device()),
        g_(store->geometry()),
        channel_(std::move(channel)),
        from_(from) {}

  absl::StatusOr<size_t> ReadAvailable(std::vector<Record>* out,
                                       size_t max_bytes) override;
  void SkipTo(uint64_t stream_offset) override {
    skip_to_ = std::max(skip_to_, stream_offset);
  }

 private:
  absl::Status Start();
  // Moves to the extent after the current one (segment + 1), or past
  // trimmed ones the consumer has. false: none yet.
  absl::StatusOr<bool> Advance();
  // The current extent is no longer this channel's: why, as a status.
  absl::Status Vanished();
  absl::Status Fail(absl::Status s) {
    failed_ = s;
    return s;
  }
  std::string Where() const {
    return absl::StrCat(dev_.path(), " slot ", slot_, " extent ", cur_.index,
                        " (channel ", channel_, ")");
  }

  LunStore& store_;
  LunDevice& dev_;
  const LunGeometry& g_;
  const std::string channel_;
  const uint64_t from_;
  uint64_t skip_to_ = 0;
  absl::Status failed_;
  bool started_ = false;
  uint32_t slot_ = 0;
  LunExtent cur_;
  uint64_t pos_ = 0;
  size_t read_size_ = 0;
  absl::Time last_check_ = absl::Now();
  absl::Time next_search_ = absl::InfinitePast();
  std::vector<DecodedRecord> records_;
};

absl::Status LunChannelReader::Start() {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtent> extents,
                      store_.FindChannel(channel_, &slot_));
  if (extents.empty()) return absl::OkStatus();
  const uint64_t want = std::max(from_, skip_to_);
  size_t chosen = 0;
  for (size_t k = 1; k < extents.size(); ++k) {
    if (extents[k].entry.first_offset <= want) chosen = k;
  }
  if (chosen == 0 && extents[0].entry.first_offset > want &&
      extents[0].entry.segment > 1) {
    return Fail(absl::DataLossError(absl::StrCat(
        dev_.path(), " channel ", channel_, ": stream offset ", from_,
        " was trimmed (oldest segment ", extents[0].entry.segment,
        " starts at ", extents[0].entry.first_offset, ")")));
  }
  cur_ = extents[chosen];
  pos_ = 0;
  started_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> LunChannelReader::Advance() {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtent> extents,
                      store_.ReadChannel(slot_, channel_));
  for (const LunExtent& e : extents) {
    if (e.entry.segment <= cur_.entry.segment) continue;
    if (e.entry.segment == cur_.entry.segment + 1 ||
        e.entry.first_offset <= skip_to_) {
      cur_ = e;
      pos_ = 0;
      return true;
    }
    return Fail(absl::DataLossError(
        absl::StrCat(Where(), ": segment ", cur_.entry.segment + 1,
                     " was trimmed past this reader")));
  }
  if (extents.empty()) return Vanished();
  return false;
}

absl::Status LunChannelReader::Vanished() {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtent> extents,
                      store_.ReadChannel(slot_, channel_));
  for (const LunExtent& e : extents) {
    if (e.entry.segment > cur_.entry.segment &&
        e.entry.first_offset <= skip_to_) {
      cur_ = e;  // trimmed under us, and the consumer has the bytes
      pos_ = 0;
      return absl::OkStatus();
    }
  }
  if (extents.empty()) {
    return Fail(absl::NotFoundError(
        absl::StrCat(Where(), ": the channel was removed while being read")));
  }
  return Fail(
      absl::DataLossError(absl::StrCat(Where(), ": trimmed past this reader")));
}

absl::StatusOr<size_t> LunChannelReader::ReadAvailable(std::vector<Record>* out,
                                                       size_t max_bytes) {
  DW_RETURN_IF_ERROR(failed_);
  if (!started_) {
    // Looking for a channel reads every slot's claim and map: not at every
    // call of a caller that polls fast.
    const absl::Time now = absl::Now();
    if (now < next_search_) return 0;
    next_search_ = now + kSearchInterval;
    DW_RETURN_IF_ERROR(Start());
    if (!started_) return 0;
  }
  const uint32_t align = dev_.align();
  size_t count = 0;
  size_t bytes = 0;
  for (;;) {
    const uint64_t base = g_.extent_offset(slot_, cur_.index);
    if (read_size_ == 0) read_size_ = align;
    size_t want = std::min<uint64_t>(read_size_, g_.extent_bytes - pos_);
    DW_ASSIGN_OR_RETURN(std::string buf, dev_.Read(base + pos_, want));
    size_t at = 0;
    bool progress = false;
    bool sealed = false;
    bool cut = false;  // a frame runs past what was read
    while (at + kLunFrameHeaderSize <= buf.size()) {
      std::optional<LunFrame> f = DecodeFrameHeader(
          absl::string_view(buf).substr(at, kLunFrameHeaderSize));
      if (!f || f->generation != cur_.entry.generation ||
          f->position != pos_ + at) {
        break;
      }
      if (f->length == 0) {
        sealed = true;
        break;
      }
      const uint64_t total = RoundUpTo(kLunFrameHeaderSize + f->length, align);
      if (pos_ + at + total > g_.extent_bytes) break;  // not ours: torn
      if (at + total > buf.size()) {
        if (at > 0) {
          cut = true;  // read again from this frame
          break;
        }
        DW_ASSIGN_OR_RETURN(buf, dev_.Read(base + pos_, total));
      }
      const absl::string_view recs =
          absl::string_view(buf).substr(at + kLunFrameHeaderSize, f->length);
      const ScanResult scan =
          ScanRecords(recs, store_.mac_key(), recs.size() + 1, &records_);
      if (scan.committed_end != recs.size()) {
        // Still being written, or torn by a writer's crash (its recovery
        // rewrites it). A bad MAC is no such thing.
        if (absl::IsUnauthenticated(scan.error) ||
            absl::IsFailedPrecondition(scan.error)) {
          return Fail(absl::Status(scan.error.code(),
                                   absl::StrCat(Where(), " offset ", pos_ + at,
                                                ": ", scan.error.message())));
        }
        break;
      }
      for (size_t k = 0; k < scan.committed_records; ++k) {
        const DecodedRecord& r = records_[k];
        if (DeliveredFrom(r, from_)) {
          out->push_back(Record{r.header, std::string(r.payload)});
          ++count;
          bytes += r.payload.size() + kRecordHeaderSize;
        }
      }
      at += total;
      progress = true;
      if (bytes >= max_bytes) break;
    }
    pos_ += at;
    if (progress) {
      last_check_ = absl::Now();
      if (bytes >= max_bytes) return count;
      // Frames up to the end of what was read: more may follow, read twice
      // as much. Otherwise the writer's end was found: reading on (a large
      // read per record) would cost a SAN bandwidth for nothing.
      if (!cut && !sealed && at < buf.size()) {
        read_size_ = align;
        return count;
      }
      read_size_ = std::min(kStreamingRead, 2 * want);
      continue;
    }
    read_size_ = align;
    if (sealed) {
      DW_ASSIGN_OR_RETURN(bool moved, Advance());
      if (moved) continue;
      return count;
    }
    if (absl::Now() - last_check_ >= kRecheck) {
      last_check_ = absl::Now();
      DW_ASSIGN_OR_RETURN(std::optional<LunExtentEntry> e,
                          store_.ReadEntry(slot_, cur_.index));
      if (!e || e->generation != cur_.entry.generation) {
        DW_RETURN_IF_ERROR(Vanished());
        continue;
      }
    }
    return count;
  }
}

}  // namespace

std::unique_ptr<ChannelReader> NewLunChannelReader(
    LunStore* store, const std::string& channel, uint64_t from_stream_offset) {
  return std::make_unique<LunChannelReader>(store, channel, from_stream_offset);
}

}  // namespace diskwire::storage
