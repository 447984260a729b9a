// The healthy path's supervision, from the engine loop: every DETECT_MS/25 it
// probes each DIRECT session's socket (core/tcp_probe.h) and asks the
// session's FailureDetector whether the path failed; and it lets go of
// sessions the application closed once the peer kernel holds their last
// bytes (lingering).

#include <netinet/tcp.h>

#include <string>
#include <vector>

#include "core/engine_impl.h"
#include "core/socket_holders.h"

namespace diskwire {

bool EngineImpl::FinishLinger(Session* s) {
  {
    FutexLockHolder send_lock(&s->send_mu);
    if (s->linger_fd < 0) return true;
    if (s->maybe_shared.load()) {
      // The application's close was its last name here, but a process it
      // forked may still hold the connection: then the stream is not over
      // and the connection is that process's to carry. Otherwise the FIN
      // the close deferred goes now.
      auto held = OtherProcessHolds(s->linger_fd);
      s->maybe_shared.store(false);
      if (held.ok() && !*held) {
        if (s->sent_to_socket < s->ring.head()) {
          s->fin_owed = true;
        } else if (!s->shut_wr) {
          os_->Shutdown(s->linger_fd, SHUT_WR);
          s->shut_wr = true;
        }
        return false;
      }
      log_.Debug("session ", s->label, ": another process holds it (",
                 held.ok() ? "seen in /proc" : held.status().message(),
                 "); this one lets go");
      s->dormant.store(true);  // no heartbeat entry, no failover
    } else {
      auto sample = probe_.Sample(s->linger_fd);
      if (!sample.ok()) return false;
      // Still bytes (or our FIN) the peer kernel has not acknowledged: keep
      // lingering.
      if (sample->outq > 0) return false;
      // The kernel's queue can also be empty because it gave up (a reset, a
      // timeout): then the path failed, and the failover check that follows
      // takes the session on (and must still see the error).
      if (sample->error_pending) return false;
    }
    private_[s->linger_fd].store(0, std::memory_order_release);
    os_->Close(s->linger_fd);
    s->linger_fd = -1;
  }
  absl::MutexLock lock(&table_.mu);
  table_.Bury(s, clock_->NowNs());
  return true;
}

void EngineImpl::CheckDirectSessions() {
  std::vector<std::shared_ptr<Session>> direct;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->state.load() == SessionState::kDirect) direct.push_back(s);
    });
    for (const auto& s : table_.connecting()) direct.push_back(s);
  }
  const int64_t now = clock_->NowNs();
  for (auto& s : direct) {
    if (s->dormant.load()) continue;
    bool quiet;  // every byte and FIN this side sent is acknowledged
    {
      // After a resume: what the peer lacks goes out even if the application
      // sends nothing more.
      FutexLockHolder send_lock(&s->send_mu);
      if (s->sent_to_socket < s->ring.head() || s->fin_owed) {
        absl::MutexLock lock(&s->mu);
        const int fd = s->names.empty() ? s->linger_fd : s->names[0];
        if (fd >= 0 && s->state.load() == SessionState::kDirect)
          FlushBacklog(s.get(), fd);
      } else if (s->ring.size() > 0 && s->ring.head() == s->idle_check_head &&
                 s->state.load() == SessionState::kDirect) {
        // Idle since the last look: what the peer's kernel holds is released.
        TrimByKernelAck(s.get());
      }
      s->idle_check_head = s->ring.head();
      quiet = s->ring.size() == 0 && s->sent_to_socket >= s->ring.head() &&
              !s->fin_owed && !s->shut_wr;
    }
    bool closed_by_application;
    {
      absl::MutexLock lock(&s->mu);
      closed_by_application = s->names.empty();
    }
    if (closed_by_application && s->linger_fd >= 0 && FinishLinger(s.get()))
      continue;
    absl::MutexLock lock(
        &s->mu);  // Close() takes it too: the fd cannot be reused under us
    if (s->names.empty() && s->linger_fd < 0) continue;
    const int fd = s->names.empty() ? s->linger_fd : s->names[0];
    if (!s->endpoints_known) {
      s->mu.Unlock();
      FinishAdoption(s.get(), fd);
      s->mu.Lock();
      continue;
    }
    // With nothing unacknowledged, the detector can find only a kernel that
    // closed the connection, which can wait: a server's thousands of idle
    // connections are not sampled at every check, which runs every
    // detect_ms / 25 (10 ms at the least). But once as it turns quiet: the
    // detector must see the queue empty, or it would count the next bytes as
    // queued since the burst before.
    if (quiet && s->sampled_quiet && now - s->last_sample_ns < kQuietSampleNs)
      continue;
    s->last_sample_ns = now;
    s->sampled_quiet = quiet;
    auto sample = probe_.Sample(fd);
    if (!sample.ok()) continue;
    s->bytes_in_network.store(sample->delivered() + s->in_adjust,
                              std::memory_order_relaxed);
    // A kernel that closed the connection leaves its error pending for the
    // application, which would see it on its next call.
    if (s->detector.OnSample(sample->path_sample())) {
      const std::string reason = s->detector.verdict().detail;
      s->mu.Unlock();
      TriggerFailover(s.get(), reason, "");
      s->mu.Lock();
    }
  }
}

}  // namespace diskwire
