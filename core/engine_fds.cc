// The application's fds of selected sessions: dup, close (lingering, an
// abortive close), epoll registrations.

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "core/engine_impl.h"

namespace diskwire {

void EngineImpl::WaitForStableNames(int fd) {
  // A swap replaces the file behind every name it saw: names must not come or
  // go while one is under way.
  if (fd < 0 || fd >= kMaxFds) return;
  Session* s = table_.At(fd);
  if (s != nullptr) WaitWhileSwapping(s);
}

void EngineImpl::OnDup(int oldfd, int newfd) {
  if (newfd < 0 || newfd >= kMaxFds || oldfd == newfd) return;
  WaitForStableNames(oldfd);
  absl::MutexLock lock(&table_.mu);
  table_.Dup(oldfd, newfd);
}

SysResult EngineImpl::Close(int fd) {
  if (IsPrivate(fd)) return SysResult::Fail(EBADF);
  WaitForStableNames(fd);
  std::shared_ptr<Session> lingering;
  bool ours = false;
  // An abortive close of a DIRECT session: the heartbeat that no longer lists
  // it goes out before the kernel's reset, so that the peer takes the reset
  // for the application's (it is) and not for a broken network.
  std::optional<uint64_t> unlisted_after;
  {
    absl::MutexLock lock(&table_.mu);
    const SessionTable::Unnamed unnamed = table_.Unname(fd);
    Session* s = unnamed.session;
    if (s == nullptr) return os_->Close(fd);
    ours = true;
    if (unnamed.last) {
      {
        absl::MutexLock slock(&s->mu);
        if (AbortsOnClose(*s)) s->app_aborted = true;
      }
      table_.TakeConnecting(s);
      std::shared_ptr<Session> listed = table_.Find(s);
      if (listed != nullptr && s->dormant.load()) {
        // Another process carries the connection: its end is theirs (the
        // kernel's FIN comes with the last close anywhere).
        table_.Bury(s, clock_->NowNs());
      } else if (listed != nullptr &&
                 s->state.load() == SessionState::kDirect && s->app_aborted) {
        // An abortive close: the kernel's reset goes with this close, which
        // a duplicate kept for lingering would hold back.
        table_.Bury(s, clock_->NowNs());
        unlisted_after = heartbeat_snapshots_;
      } else if (listed != nullptr &&
                 s->state.load() == SessionState::kDirect) {
        lingering = std::move(listed);
      }
    }
  }
  if (lingering != nullptr) {
    // As TCP's kernel does after close(): the FIN goes now, and the connection
    // lingers until the peer holds every byte. Here the engine keeps the socket
    // to fail over if the path dies first.
    FutexLockHolder send_lock(&lingering->send_mu);
    SysResult keep = os_->Fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (keep.ok()) {
      lingering->linger_fd = static_cast<int>(keep.value);
      private_[lingering->linger_fd].store(1, std::memory_order_release);
      if (lingering->maybe_shared.load()) {
        // A child may still hold the connection: the loop asks before the
        // FIN (FinishLinger).
      } else if (lingering->sent_to_socket < lingering->ring.head()) {
        lingering->fin_owed = true;  // after the backlog a resume left
      } else if (!lingering->shut_wr) {
        os_->Shutdown(lingering->linger_fd, SHUT_WR);
        lingering->shut_wr = true;
      }
    }
  }
  if (unlisted_after.has_value()) AwaitHeartbeatAfter(*unlisted_after);
  SysResult r = os_->Close(fd);
  if (ours &&
      kick_fd_ >= 0) {  // the loop finishes what the session still carries
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  return r;
}

bool EngineImpl::AbortsOnClose(const Session& s) {
  for (const auto& [option, bytes] : s.sockopts) {
    if (option != std::make_pair(SOL_SOCKET, SO_LINGER) ||
        bytes.size() < sizeof(linger))
      continue;
    linger l;
    std::memcpy(&l, bytes.data(), sizeof(l));
    return l.l_onoff != 0 && l.l_linger == 0;
  }
  return false;
}

bool EngineImpl::IsNonBlocking(int fd, int flags) const {
  if (flags & MSG_DONTWAIT) return true;
  SysResult fl = os_->Fcntl(fd, F_GETFL, 0);
  return fl.ok() && (fl.value & O_NONBLOCK);
}

void EngineImpl::ConsumeWake() {
  uint64_t v;
  os_->Read(wake_fd_, &v, sizeof(v));
}

void EngineImpl::OnEpollCtl(int epfd, int op, int fd,
                            const epoll_event* event) {
  absl::MutexLock lock(&table_.mu);
  table_.OnEpollCtl(epfd, op, fd, event);
}

}  // namespace diskwire
