// What the application may still ask of a selected socket once a swap made
// its fd name a socket pair (addresses, options), and the check of a wait's
// error events against the path.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"

namespace diskwire {

namespace {

// After a swap the fd names a socket pair: the TCP addresses come from the
// session, truncated to the caller's buffer as getsockname(2) truncates them.
SysResult CopyAddress(const sockaddr_storage& from, sockaddr* addr,
                      socklen_t* len) {
  const socklen_t full =
      from.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  std::memcpy(addr, &from, std::min(*len, full));
  *len = full;
  return SysResult::Ok(0);
}

}  // namespace

SysResult EngineImpl::GetSockName(int fd, sockaddr* addr, socklen_t* len) {
  Session* s = SessionFor(fd);
  // Generation 0: the fd still names the application's own TCP socket.
  if (s == nullptr || s->generation.load() == 0) {
    return os_->GetSockName(fd, addr, len);
  }
  return CopyAddress(s->endpoints.local, addr, len);
}

SysResult EngineImpl::GetPeerName(int fd, sockaddr* addr, socklen_t* len) {
  Session* s = SessionFor(fd);
  if (s == nullptr || s->generation.load() == 0) {
    return os_->GetPeerName(fd, addr, len);
  }
  return CopyAddress(s->endpoints.remote, addr, len);
}

SysResult EngineImpl::GetSockOpt(int fd, int level, int name, void* val,
                                 socklen_t* len) {
  Session* s = SessionFor(fd);
  if (s != nullptr && level == SOL_SOCKET && name == SO_ERROR) {
    // How a non-blocking connect ended, asked after a select() (which does
    // not check paths) or while the loop takes it over: one that a reset
    // refused opens over the volume, and the answer is the new connection's.
    if (IsSwapping(s->state.load())) {
      WaitWhileSwapping(s);
      s = SessionFor(fd);
    } else if (!s->endpoints_known &&
               s->state.load() == SessionState::kDirect &&
               TakeOverConnecting(s, false)) {
      s = SessionFor(fd);
    }
  }
  if (s == nullptr || s->state.load() == SessionState::kDirect) {
    return os_->GetSockOpt(fd, level, name, val, len);
  }
  if (level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int)) {
    absl::MutexLock lock(&s->mu);
    *static_cast<int*>(val) = s->error;
    *len = sizeof(int);
    return SysResult::Ok(0);
  }
  if (level == SOL_SOCKET && name == SO_DOMAIN && *len >= sizeof(int)) {
    *static_cast<int*>(val) = s->endpoints.local.ss_family;
    *len = sizeof(int);
    return SysResult::Ok(0);
  }
  if (level == IPPROTO_TCP) {
    absl::MutexLock lock(&s->mu);  // the loop closes it under mu
    if (s->old_sock_for_app >= 0) {
      return os_->GetSockOpt(s->old_sock_for_app, level, name, val, len);
    }
  }
  if (level == IPPROTO_TCP && *len >= sizeof(int)) {
    *static_cast<int*>(val) =
        0;  // the TCP socket is gone: report neutral values
    *len = sizeof(int);
    return SysResult::Ok(0);
  }
  return os_->GetSockOpt(fd, level, name, val, len);
}

SysResult EngineImpl::SetSockOpt(int fd, int level, int name, const void* val,
                                 socklen_t len) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->SetSockOpt(fd, level, name, val, len);
  if ((level == SOL_SOCKET || level == IPPROTO_TCP) && val != nullptr &&
      len <= 64) {
    // Kept for the socket a resume installs.
    absl::MutexLock lock(&s->mu);
    std::string bytes(static_cast<const char*>(val), len);
    auto it = std::find_if(
        s->sockopts.begin(), s->sockopts.end(),
        [&](const auto& o) { return o.first == std::make_pair(level, name); });
    if (it != s->sockopts.end()) {
      it->second = std::move(bytes);
    } else {
      s->sockopts.push_back({{level, name}, std::move(bytes)});
    }
  }
  if (s->state.load() == SessionState::kDirect) {
    return os_->SetSockOpt(fd, level, name, val, len);
  }
  if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
    return SysResult::Ok(
        0);  // meaningless on the storage path; accepted as TCP would
  }
  SysResult r = os_->SetSockOpt(fd, level, name, val, len);
  return r.ok() ? r : SysResult::Ok(0);
}

bool EngineImpl::CheckPath(int fd) {
  Session* s = SessionFor(fd);
  if (s == nullptr || s->dormant.load()) return false;
  if (IsSwapping(s->state.load())) {
    const uint32_t generation = s->generation.load();
    WaitWhileSwapping(
        s);  // a swap under way: the wait's event came from the old file
    return s->generation.load() != generation;
  }
  // On the storage path the event is the socket pair's own (an end of file the
  // engine delivered, or a session that ended): the application's to see.
  if (s->state.load() != SessionState::kDirect) return false;
  // A non-blocking connect that a reset refused opens over the volume when a
  // live peer listens there; the wait starts again on the new file.
  if (!s->endpoints_known) return TakeOverConnecting(s, false);
  auto sample = probe_.Sample(fd);
  // An orderly close (the peer's FIN, ours) is the application's to see; a
  // connection the kernel aborted (reset, timeout, unreachable) is a broken
  // path.
  if (!sample.ok() || !s->detector.OnSample(sample->path_sample()))
    return false;
  return TriggerFailover(
      s, absl::StrCat("under a wait: ", s->detector.verdict().detail), "");
}

int EngineImpl::FilterEpollEvents(int epfd, epoll_event* events, int n) {
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].events & (EPOLLERR | EPOLLHUP)) {
      int fd = -1;
      {
        absl::MutexLock lock(&table_.mu);
        fd = table_.FdRegisteredWith(epfd, events[i].data.u64);
      }
      if (fd >= 0 && CheckPath(fd))
        continue;  // the new file's events come on the next wait
    }
    events[kept++] = events[i];
  }
  return kept;
}

}  // namespace diskwire
