// MeasureLatency (cli/check_command.h): a writer on this thread, a reader on
// another, handing over through a mutex-guarded count.

#include <poll.h>

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/check_command.h"

namespace diskwire {
namespace {

// What the reader thread has seen. Thread-safe.
class Seen {
 public:
  void Add(int64_t latency_us) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    latency_us_.push_back(latency_us);
  }
  void Fail(std::string error) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    error_ = std::move(error);
  }
  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  bool stopped() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    return stop_;
  }
  // Waits until `n` records were seen or the reader failed; false on timeout.
  bool AwaitCount(size_t n, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return latency_us_.size() >= n || !error_.empty();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout) &&
           latency_us_.size() >= n;
  }
  void Into(LatencyResult* r) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock l(&mu_);
    r->latency_us = latency_us_;
    if (!error_.empty()) r->error = error_;  // the cause, not the timeout
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> latency_us_ ABSL_GUARDED_BY(mu_);
  std::string error_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

void ReadLoop(storage::VolumeWatcher* watcher, storage::ChannelReader* reader,
              Seen* seen, LatencyResult* r) {
  // Wake at least every 100 ms to notice Stop().
  const absl::Duration wait =
      std::min(watcher->poll_interval(), absl::Milliseconds(100));
  std::vector<storage::Record> records;
  storage::VolumeWatcher::Changes changes;
  while (!seen->stopped()) {
    pollfd p = {watcher->fd(), POLLIN, 0};
    const int n =
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
    if (n > 0) {
      if (absl::Status s = watcher->Drain(&changes); !s.ok()) {
        return seen->Fail(absl::StrCat("watcher: ", s.message()));
      }
    }
    records.clear();
    absl::StatusOr<size_t> got = reader->ReadAvailable(&records, 1 << 20);
    if (!got.ok())
      return seen->Fail(absl::StrCat("reader: ", got.status().message()));
    if (*got == 0) continue;
    ++(n > 0 ? r->fd_wakeups : r->poll_wakeups);
    const int64_t now = NowUs();
    for (const storage::Record& rec : records) {
      seen->Add(now - static_cast<int64_t>(rec.header.timestamp_ns / 1000));
    }
  }
}

}  // namespace

LatencyResult MeasureLatency(storage::Volume& writer_volume,
                             storage::Volume& reader_volume,
                             const std::string& channel, int samples,
                             absl::Duration poll_interval,
                             absl::Duration per_sample, absl::Duration budget) {
  LatencyResult r;
  storage::WatcherOptions wo;
  wo.poll_interval = poll_interval;
  auto watcher = reader_volume.NewWatcher(wo);
  if (!watcher.ok()) {
    r.error = absl::StrCat("watcher: ", watcher.status().message());
    return r;
  }
  r.poll_interval = (*watcher)->poll_interval();
  auto reader = reader_volume.OpenReader(channel, 0);
  absl::Status watch = (*watcher)->Watch(channel);
  auto writer = writer_volume.OpenWriter(channel, storage::WriterOptions{});
  if (!reader.ok() || !watch.ok() || !writer.ok()) {
    r.error = absl::StrCat("opening the probe channel: ",
                           !reader.ok()  ? reader.status().message()
                           : !watch.ok() ? watch.message()
                                         : writer.status().message());
    return r;
  }
  Seen seen;
  std::thread thread(ReadLoop, watcher->get(), reader->get(), &seen, &r);
  const absl::Time deadline = absl::Now() + budget;
  storage::Record rec;
  rec.header.session_id = {0, 0};
  rec.payload = std::string(64, 'p');
  for (int i = 0; i < samples; ++i) {
    rec.header.stream_offset = static_cast<uint64_t>(i) * rec.payload.size();
    rec.header.timestamp_ns = 0;  // the writer stamps the append time
    if (absl::Status s = (*writer)->Append({&rec, 1}); !s.ok()) {
      r.error = absl::StrCat("append: ", s.message());
      break;
    }
    ++r.appended;
    const absl::Duration left = deadline - absl::Now();
    if (!seen.AwaitCount(i + 1, std::min(per_sample, left))) {
      r.error =
          left <= per_sample
              ? absl::StrCat("stopped after ", absl::FormatDuration(budget))
              : absl::StrCat("append ", i + 1, " not read within ",
                             absl::FormatDuration(per_sample));
      break;
    }
  }
  seen.Stop();
  thread.join();
  seen.Into(&r);
  (void)(*writer)->Close();
  return r;
}

}  // namespace diskwire
