#include "storage/mirror.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/dir_volume.h"
#include "storage/record_codec.h"

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

// Sleeps on `fd` (if >= 0) for at most `timeout`.
void WaitFor(int fd, absl::Duration timeout) {
  pollfd p{fd, POLLIN, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  poll(&p, fd >= 0 ? 1 : 0, std::max(ms, 1));
}

// The first stream offset in the header of segment file `path`.
absl::StatusOr<uint64_t> FirstStreamOffset(FileOps& ops,
                                           const std::string& path) {
  DW_ASSIGN_OR_RETURN(int fd, ops.Open(path, O_RDONLY, 0));
  char header[kSegmentHeaderSize];
  absl::StatusOr<size_t> n = ops.PRead(fd, header, sizeof(header), 0);
  ops.Close(fd).IgnoreError();
  DW_RETURN_IF_ERROR(n.status());
  if (*n != sizeof(header)) {
    return absl::DataLossError(absl::StrCat(path, ": short segment header"));
  }
  uint64_t index = 0, first = 0;
  DW_RETURN_IF_ERROR(
      DecodeSegmentHeader(absl::string_view(header, *n), &index, &first));
  return first;
}

}  // namespace

// One source channel being copied.
struct Mirror::ChannelCopy {
  std::unique_ptr<ChannelWriter> writer;  // on the target
  std::unique_ptr<ChannelReader> reader;  // on the source
  // Resuming: records up to and including this one are on the target already.
  std::optional<RecordHeader> skip_through;
  std::vector<Record> pending;  // read, verified, not yet appended
  size_t pending_bytes = 0;
  // The source reader failed after delivering `pending`: the channel stops
  // once they are written.
  absl::Status source_error;
};

Mirror::Mirror(std::string from, std::string to, MirrorOptions options,
               std::unique_ptr<Volume> source, std::unique_ptr<Volume> target)
    : from_(std::move(from)),
      to_(std::move(to)),
      options_(std::move(options)),
      ops_(options_.file_ops ? options_.file_ops : FileOps::Default()),
      source_(std::move(source)),
      target_(std::move(target)),
      mailbox_(ops_, from_, to_, options_.mac_key,
               options_.durability != Durability::kNone) {}

Mirror::~Mirror() = default;

absl::StatusOr<std::unique_ptr<Mirror>> Mirror::Open(
    const std::string& from, const std::string& to,
    const MirrorOptions& options) {
  DW_RETURN_IF_ERROR(ValidateChannelName(options.name, "mirror name"));
  DirVolumeOptions v;
  v.mac_key = options.mac_key;
  v.file_ops = options.file_ops;
  DW_ASSIGN_OR_RETURN(std::unique_ptr<Volume> source, OpenDirVolume(from, v));
  DW_ASSIGN_OR_RETURN(std::unique_ptr<Volume> target, OpenDirVolume(to, v));
  return std::unique_ptr<Mirror>(
      new Mirror(from, to, options, std::move(source), std::move(target)));
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

absl::StatusOr<Mirror::ChannelCopy*> Mirror::Prepare(const std::string& name) {
  auto it = channels_.find(name);
  if (it != channels_.end()) return it->second.get();
  auto c = std::make_unique<ChannelCopy>();
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
    if (!n.ok()) c.source_error = n.status();
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
          Fail(name, absl::FailedPreconditionError(absl::StrCat(
                         "the target's last record (stream offset ",
                         c.skip_through->stream_offset,
                         ") is not on the source: the target channel does not "
                         "continue this source; remove it to copy afresh")));
          return absl::OkStatus();
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
    if (std::binary_search(source_names.begin(), source_names.end(), name)) {
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
    // The source's oldest segment: when it is not segment 1, everything
    // before its first stream offset was trimmed on the source.
    const std::string dir = from_ + "/" + kChannelsDir + "/" + name;
    absl::StatusOr<std::vector<std::string>> files = ops_->ListDir(dir);
    if (!files.ok()) continue;  // removed meanwhile: next check
    std::vector<std::string> foreign;
    const std::vector<uint64_t> segments = SegmentIndexes(*files, &foreign);
    if (segments.empty() || segments.front() == 1) continue;
    absl::StatusOr<uint64_t> first_offset =
        FirstStreamOffset(*ops_, dir + "/" + SegmentFileName(segments.front()));
    if (!first_offset.ok()) continue;  // the reader reports corruption
    DW_RETURN_IF_ERROR(it->second->writer->TrimBelow(*first_offset));
  }
  return absl::OkStatus();
}

absl::StatusOr<PassResult> Mirror::CopyPass() {
  PassResult result;
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, source_->ListChannels());
  absl::Status refused;
  for (const std::string& name : names) {
    if (channel_errors_.count(name)) continue;
    absl::Status s = CopyChannel(name, &result);
    if (!s.ok()) {
      if (!IsTargetRefusal(s)) return s;
      refused = s;  // other channels may still fit (another filesystem)
    }
  }
  total_records_ += result.records;
  total_bytes_ += result.bytes;
  absl::StatusOr<uint64_t> hb = mailbox_.CopyHeartbeats();
  absl::StatusOr<uint64_t> inbox = mailbox_.MoveInbox();
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

absl::Status Mirror::WriteStatusFile() {
  MirrorStatusInfo info;
  info.name = options_.name;
  info.from = from_;
  info.to = to_;
  info.now_ns = RealtimeNs();
  info.records = total_records_;
  info.bytes = total_bytes_;
  info.target_full_retries = full_retries_;
  info.channel_errors = channel_errors_;
  info.problems = mailbox_.problems();
  const std::string text = MirrorStatusText(info, lag_);
  const std::string dir = to_ + "/" + kMirrorDir;
  DW_RETURN_IF_ERROR(ops_->MakeDir(dir));
  const std::string path = dir + "/" + options_.name + ".status";
  const std::string tmp = dir + "/.tmp-" + options_.name + ".status";
  DW_ASSIGN_OR_RETURN(int fd,
                      ops_->Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666));
  absl::Status s = WriteAll(*ops_, fd, text, tmp);
  const absl::Status closed = ops_->Close(fd);
  if (s.ok()) s = closed;
  if (s.ok()) s = ops_->Rename(tmp, path);
  return s;
}

absl::Status Mirror::Run(absl::Duration poll_interval) {
  WatcherOptions wo;
  wo.poll_interval = poll_interval;
  absl::StatusOr<std::unique_ptr<VolumeWatcher>> watcher =
      source_->NewWatcher(wo);
  if (!watcher.ok()) {
    Warn(absl::StrCat("no change notification (", watcher.status().message(),
                      "): polling every ",
                      absl::FormatDuration(poll_interval)));
  }
  std::vector<std::string> watched;
  absl::Duration backoff = absl::Milliseconds(10);
  absl::Time next_status = absl::InfinitePast();
  bool reported_full = false;
  while (!stop_.load()) {
    absl::StatusOr<PassResult> pass = CopyPass();
    if (!pass.ok() && !IsTargetRefusal(pass.status())) return pass.status();
    const absl::Time now = absl::Now();
    if (now >= next_status) {
      next_status = now + absl::Seconds(1);
      absl::Status s = WriteStatusFile();
      if (!s.ok() && !IsTargetRefusal(s)) return s;
    }
    if (!pass.ok()) {
      if (!reported_full) {
        Warn(absl::StrCat("target refused a write (", pass.status().message(),
                          "); retrying with backoff, nothing is lost"));
        reported_full = true;
      }
      WaitFor(-1, backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    if (reported_full) Warn("target accepts writes again");
    reported_full = false;
    backoff = absl::Milliseconds(10);
    if (pass->records + pass->mailbox_files > 0) continue;  // more may wait
    if (watcher.ok()) {
      // Watch channels as they appear; the timeout also catches heartbeats
      // and inboxes, which the watcher does not cover.
      absl::StatusOr<std::vector<std::string>> names = source_->ListChannels();
      if (names.ok()) {
        for (const std::string& n : *names) {
          if (std::find(watched.begin(), watched.end(), n) != watched.end()) {
            continue;
          }
          if ((*watcher)->Watch(n).ok()) watched.push_back(n);
        }
      }
      WaitFor((*watcher)->fd(), poll_interval);
      VolumeWatcher::Changes changes;
      (*watcher)->Drain(&changes).IgnoreError();
    } else {
      WaitFor(-1, poll_interval);
    }
  }
  return WriteStatusFile();
}

absl::Status Mirror::ServeRequests(absl::Duration poll_interval) {
  while (!stop_.load()) {
    DW_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                        mailbox_.PendingRequests());
    for (const std::string& id : ids) {
      PassResult total;
      absl::StatusOr<PassResult> pass;
      do {  // until the source has nothing more, waiting while full
        pass = CopyPass();
        if (pass.ok()) {
          total.records += pass->records;
          total.bytes += pass->bytes;
          total.mailbox_files += pass->mailbox_files;
        } else if (IsTargetRefusal(pass.status())) {
          WaitFor(-1, absl::Milliseconds(100));
        } else {
          return pass.status();
        }
      } while (!stop_.load() &&
               (!pass.ok() || pass->records + pass->mailbox_files > 0));
      if (stop_.load()) break;
      DW_RETURN_IF_ERROR(WriteStatusFile());
      std::string summary =
          absl::StrCat("records ", total.records, "\nbytes ", total.bytes,
                       "\nfiles ", total.mailbox_files, "\n");
      for (const auto& [name, error] : channel_errors_) {
        absl::StrAppend(&summary, "error ", error, "\n");
      }
      DW_RETURN_IF_ERROR(mailbox_.AnswerRequest(id, summary));
    }
    WaitFor(-1, poll_interval);
  }
  return absl::OkStatus();
}

}  // namespace diskwire::storage
