#include "storage/mirror.h"

#include <time.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/dir_volume.h"
#include "storage/lun_device.h"
#include "storage/mirror_volume_mailbox.h"
#include "storage/record_codec.h"
#include "storage/volume_open.h"

namespace diskwire::storage {
namespace {

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

bool IsTargetRefusal(const absl::Status& s) {
  return absl::IsResourceExhausted(s) || absl::IsUnavailable(s);
}

}  // namespace

// One source channel being copied.
struct Mirror::ChannelCopy {
  std::unique_ptr<ChannelWriter> writer;  // on the target
  std::unique_ptr<ChannelReader> reader;  // on the source
  // Resuming: records up to and including this one are on the target already.
  std::optional<RecordHeader> skip_through;
  uint64_t source_id = 0;       // SourceChannelId() when the reader was opened
  std::vector<Record> pending;  // read, verified, not yet appended
  size_t pending_bytes = 0;
  // The source reader failed after delivering `pending`: the channel stops
  // once they are written.
  absl::Status source_error;
};

Mirror::Mirror(std::string from, std::string to, MirrorOptions options,
               std::unique_ptr<FileOps> owned_ops,
               std::unique_ptr<Volume> source, std::unique_ptr<Volume> target)
    : from_(std::move(from)),
      to_(std::move(to)),
      options_(std::move(options)),
      owned_ops_(std::move(owned_ops)),
      ops_(options_.file_ops ? options_.file_ops : owned_ops_.get()),
      source_(std::move(source)),
      target_(std::move(target)),
      source_is_dir_(!LooksLikeLun(from_)),
      target_is_dir_(!LooksLikeLun(to_)) {
  if (source_is_dir_) {
    files_ = std::make_unique<MailboxCopier>(
        ops_, from_, to_, options_.mac_key,
        options_.durability != Durability::kNone);
  }
  if (source_is_dir_ && target_is_dir_) {
    mailbox_ = files_.get();
  } else {
    records_ =
        std::make_unique<VolumeMailboxCopier>(source_.get(), target_.get());
    mailbox_ = records_.get();
  }
}

Mirror::~Mirror() = default;

absl::StatusOr<std::unique_ptr<Mirror>> Mirror::Open(
    const std::string& from, const std::string& to,
    const MirrorOptions& options) {
  DW_RETURN_IF_ERROR(ValidateChannelName(options.name, "mirror name"));
  DirVolumeOptions v;
  v.mac_key = options.mac_key;
  v.file_ops = options.file_ops;
  // On a LUN, what the mirror holds lives in slots claimed under this id: a
  // restarted mirror takes them back, and its target channels go on.
  const std::string slot_id = absl::StrCat("mirror.", options.name);
  DW_ASSIGN_OR_RETURN(std::unique_ptr<Volume> source,
                      OpenVolume(from, v, slot_id));
  DW_ASSIGN_OR_RETURN(std::unique_ptr<Volume> target,
                      OpenVolume(to, v, slot_id));
  std::unique_ptr<FileOps> owned;
  if (options.file_ops == nullptr) {
    // No link inside either directory volume is followed
    // (storage/file_ops.h).
    std::vector<std::string> dirs;
    for (const std::string* v : {&from, &to}) {
      if (!LooksLikeLun(*v)) dirs.push_back(*v);
    }
    // Two LUNs: no file is touched (ops_ stays null).
    if (!dirs.empty()) {
      DW_ASSIGN_OR_RETURN(owned, FileOps::Confined(dirs));
    }
  }
  return std::unique_ptr<Mirror>(new Mirror(from, to, options, std::move(owned),
                                            std::move(source),
                                            std::move(target)));
}

void Mirror::Warn(const std::string& line) {
  if (options_.warn) options_.warn(line);
}

void Mirror::Fail(const std::string& name, const absl::Status& status) {
  const std::string line = absl::StrCat(
      "channel ", name, " stopped: ", absl::StatusCodeToString(status.code()),
      ": ", status.message());
  channel_errors_[name] = line;
  channels_.erase(name);  // releases the target writer
  Warn(line);
}

uint64_t Mirror::SourceChannelId(const std::string& name) const {
  absl::StatusOr<ChannelStat> stat = source_->StatChannel(name);
  return stat.ok() ? stat->identity : 0;
}

absl::Status Mirror::Reset(const std::string& name, const std::string& why) {
  channels_.erase(name);  // closes the target writer (and drops what was
                          // read of the old channel)
  channel_errors_.erase(name);
  lag_.Forget(name);
  Warn(absl::StrCat("channel ", name, ": ", why, "; copying it afresh"));
  absl::Status s = target_->RemoveChannel(name);
  if (s.ok() || IsTargetRefusal(s)) return s;
  Fail(name, s);  // e.g. another writer holds the target channel
  return absl::OkStatus();
}

absl::StatusOr<Mirror::ChannelCopy*> Mirror::Prepare(const std::string& name) {
  auto it = channels_.find(name);
  if (it != channels_.end()) return it->second.get();
  auto c = std::make_unique<ChannelCopy>();
  c->source_id = SourceChannelId(name);  // before the reader: see Reset()
  WriterOptions w;
  w.durability = options_.durability;
  w.sync_interval = options_.sync_interval;
  w.segment_bytes = options_.segment_bytes;
  DW_ASSIGN_OR_RETURN(c->writer, target_->OpenWriter(name, w));
  uint64_t from = 0;
  if (std::optional<RecordHeader> last = c->writer->last_record()) {
    // Read from the start of the target's last record and skip through it:
    // records sharing its offset (zero-length ones) are then neither lost
    // nor duplicated.
    from = last->stream_offset;
    c->skip_through = last;
    // The source may have trimmed through that record meanwhile (a peer that
    // read it from the target acknowledged it): what follows it then starts
    // where the source now starts, at its end. Past its end, bytes the target
    // never had are gone, and the reader says so.
    absl::StatusOr<ChannelStat> stat = source_->StatChannel(name);
    if (stat.ok() && stat->trimmed_below > from &&
        stat->trimmed_below <= c->writer->end_offset()) {
      from = stat->trimmed_below;
      c->skip_through.reset();
    }
  }
  DW_ASSIGN_OR_RETURN(c->reader, source_->OpenReader(name, from));
  ChannelCopy* raw = c.get();
  channels_[name] = std::move(c);
  return raw;
}

absl::Status Mirror::FlushPending(const std::string& name, ChannelCopy& c,
                                  PassResult* result) {
  if (c.pending.empty()) return absl::OkStatus();
  // Appends of at most half a segment, so the target rotates (and trims)
  // about where the source does. A refused chunk stays pending, with the
  // chunks after it.
  const size_t chunk_limit = std::max<size_t>(options_.segment_bytes / 2, 1);
  size_t done = 0;
  absl::Status s;
  while (done < c.pending.size() && s.ok()) {
    size_t end = done, bytes = 0;
    while (end < c.pending.size()) {
      const size_t size = EncodedRecordSize(c.pending[end].payload.size(),
                                            !options_.mac_key.empty());
      if (end > done && bytes + size > chunk_limit) break;
      bytes += size;
      ++end;
    }
    s = c.writer->Append(
        absl::MakeConstSpan(c.pending).subspan(done, end - done));
    if (s.ok()) done = end;
  }
  RecordLag(name, absl::MakeConstSpan(c.pending).subspan(0, done));
  for (size_t i = 0; i < done; ++i) {
    c.pending_bytes -= c.pending[i].payload.size();
    result->bytes += c.pending[i].payload.size();
  }
  result->records += done;
  c.pending.erase(c.pending.begin(), c.pending.begin() + done);
  return s;
}

void Mirror::RecordLag(const std::string& name,
                       absl::Span<const Record> appended) {
  if (appended.empty()) return;
  // The lag: from the source's write to the target's append.
  const uint64_t now = RealtimeNs();
  int64_t newest = 0;
  for (const Record& r : appended) {
    newest = static_cast<int64_t>(now - r.header.timestamp_ns);
    lag_.Add(name, newest);
  }
  const absl::Time wall = absl::Now();
  if (options_.max_lag > absl::ZeroDuration() &&
      absl::Nanoseconds(newest) > options_.max_lag &&
      wall - last_lag_warning_ >= absl::Seconds(1)) {
    last_lag_warning_ = wall;
    Warn(absl::StrCat("warning: channel ", name, " lag ",
                      absl::FormatDuration(absl::Nanoseconds(newest)),
                      " is above --max-lag-ms (",
                      absl::FormatDuration(options_.max_lag), ")"));
  }
}

absl::Status Mirror::CopyChannel(const std::string& name, PassResult* result) {
  absl::StatusOr<ChannelCopy*> prepared = Prepare(name);
  if (!prepared.ok()) {
    if (IsTargetRefusal(prepared.status())) return prepared.status();
    Fail(name, prepared.status());
    return absl::OkStatus();
  }
  ChannelCopy& c = **prepared;
  std::vector<Record> batch;
  while (true) {
    // A batch the target refused last time goes first, unchanged.
    DW_RETURN_IF_ERROR(FlushPending(name, c, result));
    if (!c.source_error.ok()) {
      // Everything before the bad record is on the target now.
      Fail(name, c.source_error);
      return absl::OkStatus();
    }
    batch.clear();
    absl::StatusOr<size_t> n =
        c.reader->ReadAvailable(&batch, options_.batch_bytes);
    // On an error, `batch` still holds the valid records before the bad one:
    // they are copied, then the channel stops.
    if (!n.ok()) {
      if (SourceChannelId(name) != c.source_id) {
        // Removed (or removed and created again) under the reader.
        return Reset(name, "the source channel was removed or recreated");
      }
      c.source_error = n.status();
    }
    if (batch.empty()) {
      if (c.source_error.ok()) return absl::OkStatus();
      continue;
    }
    size_t first = 0;
    if (c.skip_through) {
      while (first < batch.size() && !(batch[first].header == *c.skip_through))
        ++first;
      if (first == batch.size()) {
        if (batch.back().header.stream_offset > c.skip_through->stream_offset) {
          // The engine removes a stale channel and creates it again under
          // the same name: the target holds the old one.
          return Reset(
              name, absl::StrCat("the target's last record (stream offset ",
                                 c.skip_through->stream_offset,
                                 ") is not on the source (recreated there)"));
        }
        continue;  // still before the resume point
      }
      ++first;
      c.skip_through.reset();
    }
    for (size_t i = first; i < batch.size(); ++i) {
      c.pending_bytes += batch[i].payload.size();
      c.pending.push_back(std::move(batch[i]));
    }
  }
}

absl::Status Mirror::PropagateTrims(
    const std::vector<std::string>& source_names) {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> target_names,
                      target_->ListChannels());
  for (const std::string& name : target_names) {
    if (std::binary_search(source_names.begin(), source_names.end(), name) ||
        name == MirrorStatusChannel(options_.name)) {
      continue;
    }
    // The source removed the channel: so does the target.
    channels_.erase(name);
    channel_errors_.erase(name);
    lag_.Forget(name);
    DW_RETURN_IF_ERROR(target_->RemoveChannel(name));
  }
  for (const std::string& name : source_names) {
    auto it = channels_.find(name);
    if (it == channels_.end()) continue;
    absl::StatusOr<ChannelStat> stat = source_->StatChannel(name);
    if ((stat.ok() ? stat->identity : 0) != it->second->source_id) {
      DW_RETURN_IF_ERROR(
          Reset(name, "the source channel was removed or recreated"));
      continue;
    }
    // Everything the source trimmed goes from the target too.
    if (!stat.ok() || stat->trimmed_below == 0) continue;
    DW_RETURN_IF_ERROR(it->second->writer->TrimBelow(stat->trimmed_below));
  }
  return absl::OkStatus();
}

absl::StatusOr<PassResult> Mirror::CopyPass() {
  PassResult result;
  // A LUN forgets what a process holds when its lease runs out.
  for (Volume* v : {source_.get(), target_.get()}) {
    absl::Status s = v->KeepAlive();
    if (!s.ok() && !IsTargetRefusal(s)) return s;
  }
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, source_->ListChannels());
  absl::Status refused;
  for (const std::string& name : names) {
    if (channel_errors_.count(name)) continue;
    // Another mirror's status of the same name, upstream: ours wins.
    if (name == MirrorStatusChannel(options_.name)) continue;
    absl::Status s = CopyChannel(name, &result);
    if (!s.ok()) {
      if (!IsTargetRefusal(s)) return s;
      refused = s;  // other channels may still fit (another filesystem)
    }
  }
  total_records_ += result.records;
  total_bytes_ += result.bytes;
  absl::StatusOr<uint64_t> hb = mailbox_->CopyHeartbeats();
  absl::StatusOr<uint64_t> inbox = mailbox_->MoveInbox();
  for (const absl::StatusOr<uint64_t>* n : {&hb, &inbox}) {
    if (n->ok()) {
      result.mailbox_files += **n;
    } else if (IsTargetRefusal(n->status())) {
      refused = n->status();
    } else {
      return n->status();
    }
  }
  const absl::Time now = absl::Now();
  if (now - last_trim_check_ >= options_.trim_check_interval || !refused.ok()) {
    last_trim_check_ = now;
    absl::Status s = PropagateTrims(names);
    if (!s.ok() && !IsTargetRefusal(s)) return s;
  }
  if (!refused.ok()) {
    ++full_retries_;
    return refused;
  }
  return result;
}

}  // namespace diskwire::storage
