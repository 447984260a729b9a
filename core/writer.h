// File: core/writer.h
// The outbound pipeline to the send volume (claims 1, 2, 3, 9): per-session
// queues chosen by record type, DATA copied into the session's outbound
// buffer, and one writer thread per process that wakes when a buffer reaches
// its high-water mark or its flush deadline passes, appends the batch to the
// session's storage channel in one ChannelWriter::Append, and sleeps again.
// An Append that hangs (a network filesystem stalled on one file) holds its
// own channel only: Supervise() starts another thread for the others.

#ifndef DISKWIRE_CORE_WRITER_H_
#define DISKWIRE_CORE_WRITER_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/writer_channel.h"
#include "storage/volume.h"

namespace diskwire {

// The process's writer. Owns no storage: each channel writes to the
// ChannelWriter its session opened.
//
// Thread safety: all methods are thread-safe. The writer thread is the only
// caller of the ChannelWriters it is given (they are thread-compatible).
// Without Start(), nothing is written until someone calls RunOnce() (tests
// drive the flush policy that way with a FakeClock).
class Writer {
 public:
  // REQUIRES: clock outlives the writer.
  Writer(const Clock* clock, const WriterOptions& options);
  // Stops the thread. Data not yet appended is dropped with its channels:
  // close sessions (OutboundChannel::AwaitIdle) first.
  ~Writer();

  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Starts the writer thread; no-op when running. Stop() joins every writer
  // thread; Start() may be called again (e.g. in a child after fork()).
  void Start();
  void Stop();

  // Called periodically (the engine's housekeeping): when every writer thread
  // is inside an Append that has run longer than stall_ns, starts one more
  // (at most max_threads) so that the other channels keep moving; joins the
  // threads that retired. A spare thread retires once it finds nothing to do.
  void Supervise();
  // Writer threads running now.
  int threads() const;

  // Registers one session direction writing to `sink`, whose records carry
  // `session_id` and `direction`. REQUIRES: `sink` stays valid until
  // RemoveChannel() returns.
  std::shared_ptr<OutboundChannel> AddChannel(storage::SessionId session_id,
                                              uint8_t direction,
                                              storage::ChannelWriter* sink);
  // Stops writing the channel: waits for an Append in progress, then never
  // touches its sink again. Blocked submitters get Cancelled. Idempotent.
  void RemoveChannel(const std::shared_ptr<OutboundChannel>& channel);

  // One pass at clock->NowNs(): appends every due batch. Returns the time the
  // next batch falls due (INT64_MAX when nothing is pending). The thread runs
  // this; tests may call it directly instead of Start().
  int64_t RunOnce();

  // Number of RunOnce() passes so far (wake-ups of the writer thread).
  uint64_t passes() const;

 private:
  friend class OutboundChannel;
  struct Worker {
    std::thread thread;
    bool retired = false;  // ABSL_GUARDED_BY(Writer::mu_)
  };

  // Wakes a writer thread: a channel became pending or urgent.
  void Kick();
  void StartWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(thread_mu_);
  void ThreadMain(Worker* self);
  // Channels whose Append has run longer than stall_ns.
  int StalledChannels() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const WriterOptions options_;
  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<OutboundChannel>> channels_ ABSL_GUARDED_BY(mu_);
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t passes_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // workers not retired
  // Lock order: thread_mu_ before mu_.
  absl::Mutex thread_mu_;  // Serialises Start()/Stop()/Supervise().
  std::list<Worker> workers_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_WRITER_H_
