// Connects under way (non-blocking, or still connecting when the network
// failed): the engine loop's look at them every pass, which times out those
// opening over the volume and takes over those the network fails, and the
// takeover itself (docs/ARCHITECTURE.md, "Opening over storage"). A refused
// connect is also taken over from the application's thread, when a wait
// reports its error or it asks SO_ERROR (core/socket_queries.cc).

#include <netinet/tcp.h>

#include <cerrno>

#include "core/engine_impl.h"

namespace diskwire {

void EngineImpl::CheckOpening() {
  std::vector<std::shared_ptr<Session>> opening, connecting;
  std::vector<bool> unanswered;
  const int64_t now = clock_->NowNs();
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->opening.load()) opening.push_back(s);
    });
    for (const auto& s : table_.connecting()) {
      if (s->dormant.load() || s->connect_started_ns == 0) continue;
      connecting.push_back(s);
      unanswered.push_back(now - s->connect_started_ns >
                           config_.detect_ms * 1'000'000);
    }
  }
  for (auto& s : opening) {
    bool closed;
    {
      absl::MutexLock lock(&s->mu);
      closed = s->names.empty();
    }
    if (closed) {
      // Closed while connecting: whoever accepts it gets a reset.
      s->opening.store(false);
      AbortOverStorage(s.get());
    } else if (now > s->open_deadline_ns) {
      FailOpen(s.get(), s->open_error, "no answer from the listener's process");
    }
  }
  for (size_t i = 0; i < connecting.size(); ++i) {
    if (unanswered[i]) connecting[i]->connect_started_ns = 0;  // asked once
    if (TakeOverConnecting(connecting[i].get(), unanswered[i])) {
      uint64_t one = 1;
      os_->Write(wake_fd_, &one, sizeof(one));  // the application waits on fd
    }
  }
}

bool EngineImpl::TakeOverConnecting(Session* s, bool unanswered_too,
                                    int error_read) {
  int fd;
  {
    absl::MutexLock lock(&s->mu);
    if (s->names.empty()) return false;
    fd = s->names[0];
  }
  auto sample = probe_.Sample(fd);
  if (!sample.ok()) return false;
  // A connection made, then reset before its first data call (its session
  // still connecting here), is not a refused connect: opening another one
  // would hide that from the application.
  const bool failed = sample->state == kTcpClose &&
                      (sample->error_pending || error_read != 0) &&
                      !sample->handshake_answered;
  const bool waiting = unanswered_too && sample->state == TCP_SYN_SENT;
  if (!failed && !waiting) return false;
  const sockaddr_storage dest = s->endpoints.remote;
  std::optional<OpenTarget> target = FindListener(dest);
  if (!target.has_value() || !target->alive) return false;  // TCP's own answer
  bool taken;
  {
    absl::MutexLock lock(&table_.mu);
    taken = table_.BuryConnecting(s, clock_->NowNs());
    // Until the fd names the new session, the application's calls on it wait
    // as at a swap: the old socket's error is not for it to see. Said before
    // the table's lock goes, so that a thread that finds the session taken
    // sees it.
    if (taken) s->state.store(SessionState::kFailingOver);
  }
  if (!taken) {
    // Another thread takes it over (the wait starts again once it is done),
    // or its connect completed.
    WaitWhileSwapping(s);
    return s->state.load() == SessionState::kClosed;
  }
  // A reset is the usual failure here (a middlebox's, or the peer host's
  // firewall): the error the application gets if the listener's process
  // does not answer either. Its own errno stays unread in the old socket.
  const bool opened = OpenOverStorage(fd, dest, /*nonblocking=*/true,
                                      failed ? ECONNREFUSED : ETIMEDOUT)
                          .has_value();
  if (!opened) {
    log_.Warn("connect to ", FormatAddress(dest),
              ": cannot open it over the volume; left to TCP");
    absl::MutexLock lock(&table_.mu);
    if (table_.At(fd) == s) table_.SetSlot(fd, nullptr);
  }
  {
    // A wait that saw the old socket starts again on what fd names now.
    absl::MutexLock lock(&s->mu);
    s->generation.fetch_add(1);
    s->state.store(SessionState::kClosed);
    s->state_changed.SignalAll();
  }
  return opened;
}

}  // namespace diskwire
