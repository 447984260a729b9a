// Adoption of selected sockets and the data path on the application's threads.

#include "core/engine_impl.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "storage/dir_volume.h"

extern char** environ;

namespace diskwire {
namespace {

size_t IovTotal(const iovec* iov, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += iov[i].iov_len;
  return total;
}

// Copies the first `limit` bytes' worth of `msg`'s iovecs into `out` (sized by
// the caller).
size_t TruncateIov(const msghdr* msg, size_t limit, iovec* out) {
  size_t n = 0;
  for (size_t i = 0; i < msg->msg_iovlen && limit > 0; ++i) {
    size_t len = std::min(limit, msg->msg_iov[i].iov_len);
    out[n++] = {msg->msg_iov[i].iov_base, len};
    limit -= len;
  }
  return n;
}

bool IsPathFailure(int err) {
  switch (err) {
    case ECONNRESET:
    case ETIMEDOUT:
    case EPIPE:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN:
    case ECONNABORTED:
    case EHOSTDOWN:
      return true;
    default:
      return false;
  }
}

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

constexpr int kWaitSliceMs = 20;  // how soon a blocked hook notices a swap

}  // namespace

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kDirect:
      return "DIRECT";
    case SessionState::kFailingOver:
      return "FAILING_OVER";
    case SessionState::kStorage:
      return "STORAGE";
    case SessionState::kClosed:
      return "CLOSED";
  }
  return "?";
}

Engine* Engine::Get(OsCalls* os) {
  static Engine* engine = [os]() -> Engine* {
    EnvLookup env = EnvLookup::FromEnviron(environ);
    if (!Config::Present(env)) return nullptr;
    absl::StatusOr<Config> config = Config::FromEnvironment(env);
    if (!config.ok()) {
      std::string line =
          absl::StrCat("diskwire: ", config.status().message(), "\n");
      os->Write(2, line.data(), line.size());
      if (Config::PassthroughOnError(env)) return nullptr;
      std::string hint =
          "diskwire: stopping (set DISKWIRE_ON_ERROR=passthrough to run "
          "without diskwire)\n";
      os->Write(2, hint.data(), hint.size());
      std::exit(78);  // EX_CONFIG
    }
    auto created = EngineImpl::Create(*config, os, RealClock::Get());
    if (!created.ok()) {
      std::string line =
          absl::StrCat("diskwire: ", created.status().message(), "\n");
      os->Write(2, line.data(), line.size());
      if (config->passthrough_on_error) return nullptr;
      std::exit(78);
    }
    return created->release();  // Lives as long as the process.
  }();
  return engine;
}

EngineImpl::EngineImpl(const Config& config, OsCalls* os, const Clock* clock)
    : config_(config), os_(os), clock_(clock), probe_(os), log_(config) {}

absl::StatusOr<std::unique_ptr<EngineImpl>> EngineImpl::Create(
    const Config& config, OsCalls* os, const Clock* clock) {
  std::unique_ptr<EngineImpl> e(new EngineImpl(config, os, clock));
  e->process_id_ =
      absl::StrCat(config.node, ".", getpid(), ".", clock->RealtimeNs());
  SysResult wake = os->EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!wake.ok()) return absl::ErrnoToStatus(wake.error, "eventfd");
  e->wake_fd_ = static_cast<int>(wake.value);
  e->private_[e->wake_fd_].store(1, std::memory_order_release);
  return e;
}

absl::Status EngineImpl::OpenVolumesOnce() {
  if (volumes_open_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&start_mu_);
  if (volumes_open_.load()) return absl::OkStatus();
  if (!volumes_status_.ok()) return volumes_status_;
  storage::DirVolumeOptions options;
  options.node = config_.node;
  absl::Status st;
  if (!config_.key_file.empty()) {
    auto key = storage::LoadMacKeyFile(config_.key_file);
    if (key.ok()) options.mac_key = *key;
    st = key.status();
  }
  if (st.ok()) {
    auto send = storage::OpenDirVolume(config_.send_volume, options);
    st = send.status();
    if (st.ok()) send_volume_ = std::move(*send);
  }
  if (st.ok() && config_.recv_volume != config_.send_volume) {
    auto recv = storage::OpenDirVolume(config_.recv_volume, options);
    st = recv.status();
    if (st.ok()) recv_volume_ = std::move(*recv);
  }
  if (!st.ok()) {
    volumes_status_ = st;
    log_.Error("cannot open the volume: ", st.message(),
               "; selected connections run without diskwire");
    return st;
  }
  volumes_open_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

EngineImpl::~EngineImpl() {
  DrainAtExit();
  for (int fd : {wake_fd_, loop_fd_, kick_fd_}) {
    if (fd >= 0) os_->Close(fd);
  }
}

Session* EngineImpl::SessionFor(int fd) const {
  if (!Owns(fd)) return nullptr;
  absl::MutexLock lock(&mu_);
  return by_fd_[fd];
}

bool EngineImpl::FailOver(int fd, const std::string& reason) {
  Session* s = SessionFor(fd);
  return s != nullptr && TriggerFailover(s, reason, "");
}

void EngineImpl::SetOwner(int fd, Session* s) {
  by_fd_[fd] = s;
  owned_[fd].store(s != nullptr ? 1 : 0, std::memory_order_release);
}

void EngineImpl::OnConnect(int fd, const sockaddr* addr, socklen_t len) {
  Adopt(fd, Role::kClient, addr, len);
}

void EngineImpl::OnAccept(int /*listen_fd*/, int fd) {
  Adopt(fd, Role::kServer, nullptr, 0);
}

void EngineImpl::Adopt(int fd, Role role, const sockaddr* remote_hint,
                       socklen_t hint_len) {
  if (fd < 0 || fd >= kMaxFds) return;
  int type = 0;
  socklen_t len = sizeof(type);
  if (!os_->GetSockOpt(fd, SOL_SOCKET, SO_TYPE, &type, &len).ok() ||
      type != SOCK_STREAM)
    return;
  auto s =
      std::make_shared<Session>(clock_, config_.detect_ms, config_.replay_cap);
  s->role = role;
  len = sizeof(s->endpoints.local);
  if (!os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&s->endpoints.local),
                        &len)
           .ok())
    return;
  if (s->endpoints.local.ss_family != AF_INET &&
      s->endpoints.local.ss_family != AF_INET6)
    return;
  len = sizeof(s->endpoints.remote);
  SysResult peer = os_->GetPeerName(
      fd, reinterpret_cast<sockaddr*>(&s->endpoints.remote), &len);
  if (!peer.ok()) {
    // A non-blocking connect in progress: select by the address it was given.
    if (remote_hint == nullptr || hint_len > sizeof(s->endpoints.remote))
      return;
    std::memcpy(&s->endpoints.remote, remote_hint, hint_len);
  }
  const Selector::Role sel_role = role == Role::kClient
                                      ? Selector::Role::kConnect
                                      : Selector::Role::kAccept;
  if (!config_.select.Matches(reinterpret_cast<sockaddr*>(&s->endpoints.local),
                              reinterpret_cast<sockaddr*>(&s->endpoints.remote),
                              sel_role)) {
    return;
  }
  if (!OpenVolumesOnce().ok()) return;
  s->adopted_ns = clock_->NowNs();
  {
    absl::MutexLock lock(&s->mu);
    s->names.push_back(fd);
  }
  absl::Status tuned = probe_.ConfigureSelectedSocket(fd, config_.detect_ms);
  // Keeps the kernel's send queue within half the ring, so that a trim always
  // makes room and a full ring never leaves a writable socket for the
  // application to spin on.
  if (tuned.ok()) tuned = probe_.LimitSendBuffer(fd, config_.replay_cap);
  if (!tuned.ok()) log_.Warn("selected socket ", fd, ": ", tuned.message());
  {
    absl::MutexLock lock(&mu_);
    pending_.push_back(s);
    SetOwner(fd, s.get());
  }
  StartThreadsOnce();
  if (peer.ok()) FinishAdoption(s.get(), fd);
}

bool EngineImpl::FinishAdoption(Session* s, int fd) {
  if (s->endpoints_known) return true;
  socklen_t len = sizeof(s->endpoints.remote);
  sockaddr_storage remote = {};
  if (!os_->GetPeerName(fd, reinterpret_cast<sockaddr*>(&remote), &len).ok())
    return false;
  len = sizeof(s->endpoints.local);
  os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&s->endpoints.local), &len);
  s->endpoints.remote = remote;
  auto id = SessionIdFor(s->endpoints, s->role);
  if (!id.ok()) return false;
  s->id = *id;
  s->label = s->role == Role::kClient
                 ? absl::StrCat(FormatAddress(s->endpoints.local), "->",
                                FormatAddress(s->endpoints.remote))
                 : absl::StrCat(FormatAddress(s->endpoints.remote), "->",
                                FormatAddress(s->endpoints.local));
  std::shared_ptr<Session> shared;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->get() == s) {
        shared = *it;
        pending_.erase(it);
        break;
      }
    }
    if (shared == nullptr)
      return s->endpoints_known;  // another thread finished it
    auto key = KeyOf(s->id, s->role);
    auto old = sessions_.find(key);
    if (old != sessions_.end() &&
        old->second->state.load() != SessionState::kClosed) {
      log_.Warn("session ", s->label,
                " replaces a live session with the same endpoints");
    }
    sessions_[key] = shared;
    s->endpoints_known = true;
    // A new session should be visible to its peer's failover soon, not a whole
    // interval later.
    next_heartbeat_ns_ =
        std::min(next_heartbeat_ns_, clock_->NowNs() + 50'000'000);
  }
  log_.Info("selected ", s->label, " session ", SessionIdHex(s->id));
  if (config_.mode == Mode::kStorage) TriggerFailover(s, "storage mode", "");
  return true;
}

void EngineImpl::OnDup(int oldfd, int newfd) {
  if (newfd < 0 || newfd >= kMaxFds || oldfd == newfd) return;
  absl::MutexLock lock(&mu_);
  Session* s = by_fd_[oldfd];
  if (Session* prev = by_fd_[newfd];
      prev != nullptr) {  // dup2 closed a name of ours
    absl::MutexLock slock(&prev->mu);
    prev->names.erase(
        std::remove(prev->names.begin(), prev->names.end(), newfd),
        prev->names.end());
  }
  epoll_regs_.erase(newfd);
  if (s == nullptr) {
    SetOwner(newfd, nullptr);
    return;
  }
  absl::MutexLock slock(&s->mu);
  s->names.push_back(newfd);
  SetOwner(newfd, s);
}

SysResult EngineImpl::Close(int fd) {
  if (IsPrivate(fd)) return SysResult::Fail(EBADF);
  std::shared_ptr<Session> lingering;
  bool ours = false;
  {
    absl::MutexLock lock(&mu_);
    epoll_regs_.erase(fd);
    for (auto& [fd_key, regs] : epoll_regs_)
      regs.erase(fd);  // fd may be an epoll set
    Session* s = fd >= 0 && fd < kMaxFds ? by_fd_[fd] : nullptr;
    if (s == nullptr) return os_->Close(fd);
    ours = true;
    SetOwner(fd, nullptr);
    bool last;
    {
      absl::MutexLock slock(&s->mu);
      s->names.erase(std::remove(s->names.begin(), s->names.end(), fd),
                     s->names.end());
      last = s->names.empty();
    }
    if (last) {
      pending_.erase(
          std::remove_if(pending_.begin(), pending_.end(),
                         [s](const auto& p) { return p.get() == s; }),
          pending_.end());
      auto it = sessions_.find(KeyOf(s->id, s->role));
      if (s->state.load() == SessionState::kDirect && it != sessions_.end() &&
          it->second.get() == s) {
        lingering = it->second;
      }
    }
  }
  if (lingering != nullptr) {
    // As TCP's kernel does after close(): the FIN goes now, and the connection
    // lingers until the peer holds every byte. Here the engine keeps the socket
    // to fail over if the path dies first.
    absl::MutexLock send_lock(&lingering->send_mu);
    SysResult keep = os_->Fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (keep.ok()) {
      lingering->linger_fd = static_cast<int>(keep.value);
      private_[lingering->linger_fd].store(1, std::memory_order_release);
      os_->Shutdown(lingering->linger_fd, SHUT_WR);
      lingering->shut_wr = true;
    }
  }
  SysResult r = os_->Close(fd);
  if (ours &&
      kick_fd_ >= 0) {  // the loop finishes what the session still carries
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  return r;
}

bool EngineImpl::IsNonBlocking(int fd, int flags) const {
  if (flags & MSG_DONTWAIT) return true;
  SysResult fl = os_->Fcntl(fd, F_GETFL, 0);
  return fl.ok() && (fl.value & O_NONBLOCK);
}

void EngineImpl::WaitWhileFailingOver(Session* s) {
  absl::MutexLock lock(&s->mu);
  while (s->state.load() == SessionState::kFailingOver) {
    s->state_changed.WaitWithTimeout(&s->mu, absl::Milliseconds(kWaitSliceMs));
  }
}

SysResult EngineImpl::WaitReady(int fd, short events, Session* s,
                                uint32_t generation) {
  pollfd p{fd, events, 0};
  while (s->generation.load() == generation &&
         s->state.load() == SessionState::kDirect) {
    SysResult r = os_->Poll(&p, 1, kWaitSliceMs);
    if (!r.ok() && r.error != EINTR) return r;
    if (r.value > 0) return SysResult::Ok(0);
  }
  return SysResult::Ok(0);
}

void EngineImpl::TrimByKernelAck(Session* s) {
  if (s->names.empty()) return;
  // SIOCOUTQ, not tcpi_bytes_acked: the latter counts the client's SYN
  // (core/tcp_probe.h).
  auto acked = probe_.AckedOffset(s->names[0], s->ring.head(), s->shut_wr);
  if (!acked.ok()) return;
  s->kernel_acked.store(*acked, std::memory_order_relaxed);
  (void)s->ring.TrimTo(std::min(*acked, s->ring.head()));
}

SysResult EngineImpl::SendDirect(Session* s, int fd, const msghdr* msg,
                                 int flags, bool* retry) {
  *retry = false;
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  // The blocking mode matters only once a call would block: no fcntl on the
  // fast path.
  auto nonblocking = [&] { return IsNonBlocking(fd, flags); };
  const uint32_t generation = s->generation.load();
  size_t done = 0;
  absl::InlinedVector<iovec, 8> rest(msg->msg_iovlen);
  absl::InlinedVector<iovec, 8> part(msg->msg_iovlen);
  while (true) {
    SysResult r;
    {
      absl::MutexLock lock(&s->send_mu);
      if (s->state.load() != SessionState::kDirect) {
        *retry = true;
        break;
      }
      if (s->ring.Free() < want - done) TrimByKernelAck(s);
      size_t room = std::min(s->ring.Free(), want - done);
      if (room > 0 || want == 0) {
        // Skip what earlier rounds sent, then take at most `room` bytes: every
        // byte the kernel accepts has a place in the ring.
        size_t n = 0, skip = done;
        for (size_t i = 0; i < msg->msg_iovlen; ++i) {
          const iovec& v = msg->msg_iov[i];
          if (skip >= v.iov_len) {
            skip -= v.iov_len;
            continue;
          }
          rest[n++] = {static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
          skip = 0;
        }
        msghdr m = *msg;
        m.msg_iov = rest.data();
        m.msg_iovlen = n;
        m.msg_iovlen = TruncateIov(&m, room, part.data());
        m.msg_iov = part.data();
        r = os_->SendMsg(fd, &m, flags | MSG_DONTWAIT);
        if (r.ok()) {
          msghdr sent = m;
          size_t k = TruncateIov(&sent, r.value, rest.data());
          s->ring.Append(rest.data(), static_cast<int>(k));
          done += r.value;
          if (done == want || nonblocking()) return SysResult::Ok(done);
          continue;
        }
      } else {
        r = SysResult::Fail(
            EAGAIN);  // the ring is full of bytes the peer has not acknowledged
      }
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (nonblocking())
        return done > 0 ? SysResult::Ok(done) : SysResult::Fail(EAGAIN);
      WaitReady(fd, POLLOUT, s, generation);
      continue;
    }
    if (r.error == EINTR) return done > 0 ? SysResult::Ok(done) : r;
    if (IsPathFailure(r.error))
      s->abort_consumed = true;  // SO_ERROR is read now
    if (IsPathFailure(r.error) && TriggerFailover(s, strerror(r.error), "")) {
      *retry = true;
      break;
    }
    return done > 0 ? SysResult::Ok(done) : r;
  }
  // The session moved to storage: the caller sends the rest through the socket
  // pair.
  if (done > 0) return SysResult::Ok(done);
  return SysResult::Fail(EAGAIN);
}

SysResult EngineImpl::SendMsg(int fd, const msghdr* msg, int flags) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->SendMsg(fd, msg, flags);
  if (!s->endpoints_known && !FinishAdoption(s, fd))
    return os_->SendMsg(fd, msg, flags);
  while (true) {
    SessionState st = s->state.load();
    if (st == SessionState::kFailingOver) {
      WaitWhileFailingOver(s);
      continue;
    }
    if (st == SessionState::kDirect) {
      bool retry = false;
      SysResult r = SendDirect(s, fd, msg, flags, &retry);
      if (!retry || r.ok()) return r;
      continue;
    }
    {
      absl::MutexLock lock(&s->mu);
      if (s->error != 0) return SysResult::Fail(s->error);
    }
    // A destination address, which TCP ignores on a connected socket, would
    // make the socket pair fail with EISCONN.
    msghdr m = *msg;
    m.msg_name = nullptr;
    m.msg_namelen = 0;
    SysResult r = os_->SendMsg(fd, &m, flags | MSG_NOSIGNAL);
    if (!r.ok() && r.error == EPIPE) {
      absl::MutexLock lock(&s->mu);
      if (s->error != 0) return SysResult::Fail(s->error);
    }
    return r;
  }
}

SysResult EngineImpl::RecvDirect(Session* s, int fd, msghdr* msg, int flags,
                                 bool* retry) {
  *retry = false;
  // The blocking mode matters only once a call would block: no fcntl on the
  // fast path.
  auto nonblocking = [&] { return IsNonBlocking(fd, flags); };
  // MSG_WAITALL on a blocking socket: keep reading until the buffer is full, as
  // the kernel would (the inner reads never block, so that a swap can always
  // take the socket).
  const bool wait_all =
      (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && !nonblocking();
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  const uint32_t generation = s->generation.load();
  absl::InlinedVector<iovec, 8> rest(msg->msg_iov,
                                     msg->msg_iov + msg->msg_iovlen);
  size_t got = 0;
  while (true) {
    SysResult r;
    {
      absl::MutexLock lock(&s->recv_mu);
      if (s->state.load() != SessionState::kDirect) {
        *retry = got == 0;
        return got > 0 ? SysResult::Ok(got) : SysResult::Fail(EAGAIN);
      }
      msghdr m = *msg;
      m.msg_iov = rest.data();
      m.msg_iovlen = rest.size();
      r = os_->RecvMsg(fd, &m, (flags & ~MSG_WAITALL) | MSG_DONTWAIT);
      if (got == 0)
        msg->msg_flags = m.msg_flags, msg->msg_namelen = m.msg_namelen;
    }
    if (r.ok()) {
      got += r.value;
      if (!wait_all || r.value == 0 || got >= want) return SysResult::Ok(got);
      size_t skip = r.value;  // advance the iovecs past what arrived
      while (!rest.empty() && skip >= rest.front().iov_len) {
        skip -= rest.front().iov_len;
        rest.erase(rest.begin());
      }
      if (!rest.empty()) {
        rest.front().iov_base =
            static_cast<char*>(rest.front().iov_base) + skip;
        rest.front().iov_len -= skip;
      }
      continue;
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (nonblocking()) return got > 0 ? SysResult::Ok(got) : r;
      WaitReady(fd, POLLIN, s, generation);
      continue;
    }
    if (got > 0) return SysResult::Ok(got);  // the error shows on the next call
    if (IsPathFailure(r.error))
      s->abort_consumed = true;  // SO_ERROR is read now
    if (IsPathFailure(r.error) && TriggerFailover(s, strerror(r.error), "")) {
      *retry = true;
      return r;
    }
    return r;
  }
}

SysResult EngineImpl::RecvMsg(int fd, msghdr* msg, int flags) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->RecvMsg(fd, msg, flags);
  if (!s->endpoints_known && !FinishAdoption(s, fd))
    return os_->RecvMsg(fd, msg, flags);
  while (true) {
    SessionState st = s->state.load();
    if (st == SessionState::kFailingOver) {
      WaitWhileFailingOver(s);
      continue;
    }
    if (st == SessionState::kDirect) {
      bool retry = false;
      SysResult r = RecvDirect(s, fd, msg, flags, &retry);
      if (!retry) return r;
      continue;
    }
    SysResult r = os_->RecvMsg(fd, msg, flags);
    if (r.ok() && r.value == 0 && IovTotal(msg->msg_iov, msg->msg_iovlen) > 0) {
      absl::MutexLock lock(&s->mu);
      if (s->error != 0) return SysResult::Fail(s->error);
    }
    return r;
  }
}

SysResult EngineImpl::Shutdown(int fd, int how) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->Shutdown(fd, how);
  WaitWhileFailingOver(s);
  absl::MutexLock lock(&s->send_mu);
  SysResult r =
      os_->Shutdown(fd, how);  // DIRECT: a FIN on TCP; STORAGE: EOF on the pair
  // The swap bumps `generation` under send_mu: zero means the fd still named
  // the TCP socket (the state may already say FAILING_OVER).
  if (r.ok() && (how == SHUT_WR || how == SHUT_RDWR) &&
      s->generation.load() == 0) {
    // The FIN sits at ring.head() in the stream: a later failover must carry it
    // too.
    s->shut_wr = true;
  }
  log_.Debug("session ", s->label, ": shutdown(", how, ") = ", r.value, " in ",
             SessionStateName(s->state.load()), " generation ",
             s->generation.load());
  return r;
}

SysResult EngineImpl::GetSockName(int fd, sockaddr* addr, socklen_t* len) {
  Session* s = SessionFor(fd);
  if (s == nullptr || s->state.load() == SessionState::kDirect) {
    return os_->GetSockName(fd, addr, len);
  }
  return CopyAddress(s->endpoints.local, addr, len);
}

SysResult EngineImpl::GetPeerName(int fd, sockaddr* addr, socklen_t* len) {
  Session* s = SessionFor(fd);
  if (s == nullptr || s->state.load() == SessionState::kDirect) {
    return os_->GetPeerName(fd, addr, len);
  }
  return CopyAddress(s->endpoints.remote, addr, len);
}

SysResult EngineImpl::GetSockOpt(int fd, int level, int name, void* val,
                                 socklen_t* len) {
  Session* s = SessionFor(fd);
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
  if (level == IPPROTO_TCP && s->old_sock_open) {
    return os_->GetSockOpt(s->old_sock, level, name, val, len);
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
  if (s == nullptr || s->state.load() == SessionState::kDirect) {
    return os_->SetSockOpt(fd, level, name, val, len);
  }
  if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
    return SysResult::Ok(
        0);  // meaningless on the storage path; accepted as TCP would
  }
  SysResult r = os_->SetSockOpt(fd, level, name, val, len);
  return r.ok() ? r : SysResult::Ok(0);
}

void EngineImpl::ConsumeWake() {
  uint64_t v;
  os_->Read(wake_fd_, &v, sizeof(v));
}

bool EngineImpl::CheckPath(int fd) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return false;
  if (s->state.load() == SessionState::kFailingOver) {
    WaitWhileFailingOver(
        s);  // a swap under way: the wait's event came from the old socket
    return s->state.load() == SessionState::kStorage;
  }
  // On the storage path the event is the socket pair's own (an end of file the
  // engine delivered, or a session that ended): the application's to see.
  if (s->state.load() != SessionState::kDirect) return false;
  auto sample = probe_.Sample(fd);
  // An orderly close (the peer's FIN, ours) is the application's to see; a
  // connection the kernel aborted (reset, timeout, unreachable) is a broken
  // path.
  if (!sample.ok() || sample->state != TCP_CLOSE) return false;
  return TriggerFailover(s, "the connection broke under a wait", "");
}

int EngineImpl::FilterEpollEvents(int epfd, epoll_event* events, int n) {
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (events[i].events & (EPOLLERR | EPOLLHUP)) {
      int fd = -1;
      {
        absl::MutexLock lock(&mu_);
        for (const auto& [reg_fd, regs] : epoll_regs_) {
          auto it = regs.find(epfd);
          if (it != regs.end() && it->second.data.u64 == events[i].data.u64) {
            fd = reg_fd;
            break;
          }
        }
      }
      if (fd >= 0 && CheckPath(fd))
        continue;  // the new file's events come on the next wait
    }
    events[kept++] = events[i];
  }
  return kept;
}

void EngineImpl::OnEpollCtl(int epfd, int op, int fd,
                            const epoll_event* event) {
  absl::MutexLock lock(&mu_);
  if (op == EPOLL_CTL_DEL) {
    auto it = epoll_regs_.find(fd);
    if (it != epoll_regs_.end()) it->second.erase(epfd);
    return;
  }
  if (event != nullptr) epoll_regs_[fd][epfd] = *event;
}

void EngineImpl::BeforeFork() { mu_.Lock(); }

void EngineImpl::AfterForkParent() { mu_.Unlock(); }

void EngineImpl::AfterForkChild() {
  // The child shares the parent's sockets but not its threads: its copies of
  // selected sockets keep working on the healthy path (the parent's engine
  // carries them if the network fails), and it gets an engine identity of its
  // own for any connection it makes.
  mu_.Unlock();
  absl::MutexLock lock(&mu_);
  for (int fd = 0; fd < kMaxFds; ++fd) {
    if (owned_[fd].load(std::memory_order_relaxed)) SetOwner(fd, nullptr);
  }
  sessions_.clear();
  epoll_regs_.clear();
  started_.store(false);
  stopping_.store(false);
  loop_thread_.detach();
  (void)writer_.release();  // its thread stayed in the parent; a new one starts
                            // on demand
  process_id_ =
      absl::StrCat(config_.node, ".", getpid(), ".", clock_->RealtimeNs());
}

}  // namespace diskwire
