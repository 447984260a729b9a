// Mirror's loops: continuous copying, copy-all, copy requests, and the
// status file (mirror.h).

#include <fcntl.h>
#include <poll.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/mirror.h"
#include "storage/mirror_requests.h"

namespace diskwire::storage {
namespace {

bool IsTargetRefusal(const absl::Status& s) {
  return absl::IsResourceExhausted(s) || absl::IsUnavailable(s);
}

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

// Sleeps on `fd` (if >= 0) for at most `timeout`.
void WaitFor(int fd, absl::Duration timeout) {
  pollfd p{fd, POLLIN, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  poll(&p, fd >= 0 ? 1 : 0, std::max(ms, 1));
}

}  // namespace

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
  info.problems = mailbox_->problems();
  const std::string text = MirrorStatusText(info, lag_);
  if (!target_is_dir_) return AppendStatusRecord(text);
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

absl::Status Mirror::AppendStatusRecord(const std::string& text) {
  if (status_writer_ == nullptr) {
    DW_ASSIGN_OR_RETURN(
        status_writer_,
        target_->OpenWriter(MirrorStatusChannel(options_.name), {}));
    status_offset_ = status_writer_->end_offset();
  }
  Record r;
  r.header.type = RecordType::kData;
  r.header.stream_offset = status_offset_;
  r.payload = text;
  DW_RETURN_IF_ERROR(status_writer_->Append({r}));
  // Only the newest status matters: the ones before it go.
  DW_RETURN_IF_ERROR(status_writer_->TrimBelow(status_offset_));
  status_offset_ += text.size();
  return absl::OkStatus();
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
        for (auto it = watched.begin(); it != watched.end();) {
          if (std::binary_search(names->begin(), names->end(), *it)) {
            ++it;
          } else {
            (*watcher)->Unwatch(*it).IgnoreError();
            it = watched.erase(it);
          }
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

absl::StatusOr<std::vector<std::string>> Mirror::PendingRequests() {
  if (files_ != nullptr) return files_->PendingRequests();
  DW_ASSIGN_OR_RETURN(InboxListing in,
                      source_->TakeInbox(MirrorRequestInbox(options_.name)));
  std::vector<std::string> ids;
  for (const InboxMessage& m : in.messages) ids.push_back(m.name);
  return ids;
}

absl::Status Mirror::AnswerRequest(const std::string& id, std::string summary) {
  if (files_ != nullptr) return files_->AnswerRequest(id, summary);
  // An inbox message on a LUN is one block.
  if (summary.size() > kMaxLunAnswer) {
    summary.resize(kMaxLunAnswer - 4);
    summary += "...\n";
  }
  return source_->PostToInbox(MirrorAnswerInbox(options_.name, id), "done",
                              summary);
}

absl::Status Mirror::ServeRequests(absl::Duration poll_interval) {
  while (!stop_.load()) {
    // Between requests nothing else renews the volumes' leases.
    DW_RETURN_IF_ERROR(source_->KeepAlive());
    DW_RETURN_IF_ERROR(target_->KeepAlive());
    DW_ASSIGN_OR_RETURN(std::vector<std::string> ids, PendingRequests());
    for (const std::string& id : ids) {
      absl::StatusOr<PassResult> total = CopyAll();
      if (absl::IsCancelled(total.status())) break;
      DW_RETURN_IF_ERROR(total.status());
      if (stop_.load()) break;
      DW_RETURN_IF_ERROR(WriteStatusFile());
      std::string summary =
          absl::StrCat("records ", total->records, "\nbytes ", total->bytes,
                       "\nfiles ", total->mailbox_files, "\n");
      for (const auto& [name, error] : channel_errors_) {
        absl::StrAppend(&summary, "error ", error, "\n");
      }
      DW_RETURN_IF_ERROR(AnswerRequest(id, std::move(summary)));
    }
    WaitFor(-1, poll_interval);
  }
  return absl::OkStatus();
}

absl::StatusOr<PassResult> Mirror::CopyAll() {
  PassResult total;
  absl::Duration backoff = absl::Milliseconds(10);
  while (!stop_.load()) {
    absl::StatusOr<PassResult> pass = CopyPass();
    if (!pass.ok()) {
      if (!IsTargetRefusal(pass.status())) return pass.status();
      if (backoff == absl::Milliseconds(10)) {
        Warn(absl::StrCat("target refused a write (", pass.status().message(),
                          "); retrying with backoff, nothing is lost"));
      }
      WaitFor(-1, backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    total.records += pass->records;
    total.bytes += pass->bytes;
    total.mailbox_files += pass->mailbox_files;
    if (pass->records + pass->mailbox_files == 0) return total;
  }
  return absl::CancelledError("stopped");
}

}  // namespace diskwire::storage
