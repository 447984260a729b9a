// Leaving: what the engine does when its process exits (as TCP's kernel keeps
// sending an exiting process's bytes), and the abrupt stop that simulates a
// killed process in tests.

#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "core/engine_impl.h"

namespace diskwire {
namespace {

// Engines whose loops run, drained by the exit hook.
absl::Mutex g_exit_mu;
std::vector<EngineImpl*> g_exit_engines ABSL_GUARDED_BY(g_exit_mu);

}  // namespace

void EngineImpl::RegisterExitDrain() {
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.push_back(this);
  }
  static const bool registered = [] {
    return std::atexit(&EngineImpl::DrainAtExitHook) == 0;
  }();
  (void)registered;
}

void EngineImpl::DrainAtExitHook() {
  std::vector<EngineImpl*> engines;
  {
    absl::MutexLock lock(&g_exit_mu);
    engines.swap(g_exit_engines);
  }
  for (EngineImpl* e : engines) e->DrainAtExit();
}

void EngineImpl::StopWithoutDrain() {
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.erase(
        std::remove(g_exit_engines.begin(), g_exit_engines.end(), this),
        g_exit_engines.end());
  }
  if (stopping_.exchange(true)) return;
  if (kick_fd_ >= 0) {
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  if (writer_ != nullptr) writer_->Stop();
}

void EngineImpl::FailOverUnacknowledgedAtExit() {
  // TCP's kernel keeps sending a closed or exiting socket's bytes; across a
  // dead network they would be lost with the process. Give the peer kernel the
  // detection bound to acknowledge them, then carry what it still lacks over
  // the volume.
  std::vector<std::shared_ptr<Session>> direct;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      // A dormant session is another process's to carry.
      if (s->state.load() == SessionState::kDirect && !s->dormant.load())
        direct.push_back(s);
    });
  }
  const int64_t deadline = clock_->NowNs() + config_.detect_ms * 1'000'000;
  while (!direct.empty()) {
    std::vector<std::shared_ptr<Session>> waiting;
    for (auto& s : direct) {
      absl::MutexLock lock(&s->mu);
      const int fd = !s->names.empty() ? s->names[0] : s->linger_fd;
      if (fd < 0) continue;
      auto sample = probe_.Sample(fd);
      if (sample.ok() && sample->outq > 0) waiting.push_back(s);
    }
    direct.swap(waiting);
    if (direct.empty()) break;
    if (clock_->NowNs() >= deadline) {
      for (auto& s : direct) {
        TriggerFailover(s.get(),
                        "exiting with bytes the peer has not acknowledged", "",
                        0, "exit");
      }
      break;
    }
    pollfd none{-1, 0, 0};
    os_->Poll(&none, 1,
              10);  // a short wait between two looks at the kernel's queues
  }
}

void EngineImpl::SubmitAllAtExit(Session* s) {
  // The writer's buffer takes a megabyte at a time: the rest of the pair and
  // of the ring goes as it drains, then the FIN. The loop that would feed it
  // has stopped.
  const int64_t deadline = clock_->NowNs() + kExitFlushNs;
  {
    // A full ring (a peer that reads slowly) would hold the pair's bytes
    // back; an exiting process resumes nothing, so room is made for them.
    FutexLockHolder lock(&s->send_mu);
    int unread = 0;
    if (s->leg.eng_end >= 0 &&
        os_->Ioctl(s->leg.eng_end, FIONREAD, &unread).ok() &&
        static_cast<size_t>(unread) > s->ring.Free()) {
      s->ring.Grow(s->ring.capacity() + unread - s->ring.Free());
    }
  }
  for (;;) {
    storage_path_.PumpAppToVolume(s);
    bool pending;
    {
      FutexLockHolder lock(&s->send_mu);
      int unread = 0;
      const bool pair_empty =
          s->leg.eng_end < 0 || s->leg.app_wrote_eof ||
          (os_->Ioctl(s->leg.eng_end, FIONREAD, &unread).ok() && unread == 0);
      pending = !pair_empty || s->leg.next_to_volume < s->ring.head();
      if (!pending) {
        s->leg.app_wrote_eof =
            true;  // the application's end stays open: no EOF
        storage_path_.SubmitToWriter(s);
      }
    }
    if (!pending) return;
    if (clock_->NowNs() >= deadline) {
      log_.Error("session ", s->label, ": exiting before the volume took ",
                 "everything the application wrote (", kExitFlushNs / 1'000'000,
                 " ms)");
      return;
    }
    (void)s->leg.out->AwaitIdle(absl::Milliseconds(10));  // room in its buffer
  }
}

void EngineImpl::DrainAtExit() {
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.erase(
        std::remove(g_exit_engines.begin(), g_exit_engines.end(), this),
        g_exit_engines.end());
  }
  if (stopping_.load()) return;
  FailOverUnacknowledgedAtExit();
  if (stopping_.exchange(true)) return;
  // A forked child that never started its threads has no heartbeat, and the
  // kick fd it holds is its parent's. It must not touch either: it may be in
  // a sandbox that kills it for a call it does not expect (sshd's network
  // child).
  const bool ran = started_.load();
  if (ran && kick_fd_ >= 0) {
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&table_.mu);
    all = table_.Snapshot();
  }
  for (auto& s : all) {
    if (s->link != nullptr) {
      AbandonResume(s.get(), "the process exits",
                    s->role == Role::kServer &&
                        s->link->phase == ResumeLink::Phase::kAwaitCommit);
    }
    if (s->state.load() == SessionState::kStorage) {
      {
        absl::MutexLock lock(&s->mu);
        s->names.clear();  // the application is gone with the process
      }
      SubmitAllAtExit(s.get());
    }
    // A session that ended just now (CLOSED) may still have its last records,
    // its FIN, in the writer's queue: they go out before the process does.
    absl::Status idle = s->leg.out != nullptr
                            ? s->leg.out->AwaitIdle(absl::Seconds(5))
                            : absl::OkStatus();
    if (!idle.ok()) {
      log_.Error(
          "session ", s->label,
          ": exiting before the volume took everything: ", idle.message());
    }
  }
  if (writer_ != nullptr) writer_->Stop();
  for (auto& s : all) {
    if (s->leg.channel != nullptr) (void)s->leg.channel->Sync();
  }
  if (ran && send_volume_ != nullptr)
    (void)send_volume_->RemoveHeartbeat(process_id_);
}

}  // namespace diskwire
