// Opening a connection over the volume while the network is down, the
// client's side (docs/ARCHITECTURE.md, "Opening over storage"): a connect()
// to a selected destination that the network cannot reach (no route, or a SYN
// that gets no answer within the detection bound) looks for a live peer
// process that advertises a listener for it. If one does, the application's
// fd becomes one end of a socket pair, exactly as after a failover, a request
// goes to that process's inbox, and its answer completes the connect(). From
// there on the session is like any other: it moves to TCP when the network
// heals (resume). The listener's side is core/accept_over_storage.cc.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"
#include "core/signal_restart.h"

namespace diskwire {
namespace {

// A connect() that failed with one of these, to a listener a live peer
// advertises, opens over the volume. ECONNREFUSED too: a middlebox's reset
// (the listener is known to be there); a listener that is really gone gets
// the same answer from its process.
bool Unreachable(int error) {
  return error == ENETUNREACH || error == EHOSTUNREACH || error == ENETDOWN ||
         error == ECONNREFUSED || error == ETIMEDOUT;
}

void SetPort(sockaddr_storage* addr, uint16_t port) {
  if (addr->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

}  // namespace

SysResult EngineImpl::Connect(int fd, const sockaddr* addr, socklen_t len) {
  if (fd < 0 || fd >= kMaxFds || addr == nullptr ||
      len > sizeof(sockaddr_storage) ||
      !config_.select.Matches(nullptr, addr, Selector::Role::kConnect)) {
    return os_->Connect(fd, addr, len);
  }
  if (Session* s = SessionFor(fd); s != nullptr)
    return ConnectAgain(s, fd, addr, len);
  sockaddr_storage dest = {};
  std::memcpy(&dest, addr, len);
  SysResult got = os_->Fcntl(fd, F_GETFL, 0);
  if (!got.ok()) return os_->Connect(fd, addr, len);
  const int status_flags = static_cast<int>(got.value);
  const bool nonblocking = (status_flags & O_NONBLOCK) != 0;
  // A blocking connect() is made without blocking, so that a blackhole is
  // known within the detection bound rather than after the kernel's SYN
  // retries (about two minutes).
  if (!nonblocking) os_->Fcntl(fd, F_SETFL, status_flags | O_NONBLOCK);
  SysResult r = os_->Connect(fd, addr, len);
  int error = r.ok() ? 0 : r.error;
  bool blackholed = false;
  if (error == EINPROGRESS && !nonblocking)
    error = AwaitConnect(fd, dest, &blackholed);
  if (!nonblocking) os_->Fcntl(fd, F_SETFL, status_flags);
  if (error == 0 || error == EINPROGRESS || error == EINTR) {
    // Connected, or still connecting (a non-blocking connect, a signal, an
    // SO_SNDTIMEO that ran out), as the kernel would leave it.
    Adopt(fd, Role::kClient, addr, len);
    return error == 0 ? SysResult::Ok(0) : SysResult::Fail(error);
  }
  if (blackholed || Unreachable(error)) {
    std::optional<SysResult> opened =
        OpenOverStorage(fd, dest, nonblocking, blackholed ? ETIMEDOUT : error);
    if (opened.has_value()) return *opened;
  }
  return SysResult::Fail(error);
}

SysResult EngineImpl::ConnectAgain(Session* s, int fd, const sockaddr* addr,
                                   socklen_t len) {
  if (s->state.load() == SessionState::kDirect) {
    // Some programs learn how a non-blocking connect ended by calling
    // connect() again rather than by SO_ERROR. One that a reset refused opens
    // over the volume, as when a wait reports it; the socket already has its
    // session either way.
    const bool connecting = !s->endpoints_known;
    if (!connecting || !TakeOverConnecting(s, false)) {
      SysResult r = os_->Connect(fd, addr, len);
      // The reset came after the look, and the kernel's answer has consumed
      // the socket's error: the takeover is told it.
      if (r.ok() || !connecting || !Unreachable(r.error) ||
          !TakeOverConnecting(s, false, r.error)) {
        return r;
      }
    }
    s = SessionFor(fd);
    if (s == nullptr || s->state.load() == SessionState::kDirect) {
      return os_->Connect(fd, addr, len);  // left to TCP
    }
  }
  // A connection over the volume: what the kernel says of a socket still
  // connecting, or connected.
  return SysResult::Fail(s->opening.load() ? EALREADY : EISCONN);
}

int EngineImpl::AwaitConnect(int fd, const sockaddr_storage& dest,
                             bool* blackholed) {
  timeval sndtimeo = {};
  socklen_t len = sizeof(sndtimeo);
  os_->GetSockOpt(fd, SOL_SOCKET, SO_SNDTIMEO, &sndtimeo, &len);
  const int64_t start = clock_->NowNs();
  const int64_t limit_ns = sndtimeo.tv_sec > 0 || sndtimeo.tv_usec > 0
                               ? start + sndtimeo.tv_sec * 1'000'000'000LL +
                                     sndtimeo.tv_usec * 1000LL
                               : -1;
  bool asked = false;
  while (true) {
    const int64_t now = clock_->NowNs();
    if (limit_ns >= 0 && now >= limit_ns) return EINPROGRESS;
    int64_t wait_ns = limit_ns >= 0 ? limit_ns - now : 1'000'000'000;
    if (!asked)
      wait_ns = std::min(wait_ns, start + config_.detect_ms * 1'000'000 - now);
    pollfd p{fd, POLLOUT, 0};
    SysResult polled = os_->Poll(
        &p, 1, static_cast<int>(std::max<int64_t>(wait_ns / 1'000'000, 1)));
    // A signal ends the wait as it ends the kernel's blocking connect(),
    // unless the call would restart; the connection goes on without the
    // caller, as the kernel's does.
    if (!polled.ok() && polled.error == EINTR) {
      if (!RestartsAfterSignal(limit_ns >= 0)) return EINTR;
      continue;
    }
    if (!polled.ok()) return polled.error;
    if (polled.value > 0) {
      int error = 0;
      len = sizeof(error);
      os_->GetSockOpt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
      return error;
    }
    if (!asked && clock_->NowNs() >= start + config_.detect_ms * 1'000'000) {
      // No answer to the SYN within the bound: the rendezvous, if a live
      // listener is advertised. Otherwise TCP's own patience.
      asked = true;
      std::optional<OpenTarget> target = FindListener(dest);
      if (target.has_value()) {
        *blackholed = target->alive;
        if (!target->alive) {
          log_.Info("connect to ", FormatAddress(dest),
                    ": no answer, and the process that listened there (",
                    target->process, ") is dead");
        }
        return ETIMEDOUT;
      }
    }
  }
}

std::optional<EngineImpl::OpenTarget> EngineImpl::FindListener(
    const sockaddr_storage& dest) {
  if (!OpenVolumesOnce().ok()) return std::nullopt;
  auto peers = peers_->Refresh();
  if (!peers.ok()) {
    log_.Warn("cannot list heartbeats: ", peers.status().message());
    return std::nullopt;
  }
  const PeerProcess* listener = (*peers)->ListenerFor(dest);
  if (listener == nullptr) return std::nullopt;
  return OpenTarget{listener->id, listener->alive};
}

absl::StatusOr<std::shared_ptr<Session>> EngineImpl::NewOpenedSession(
    Role role, const sockaddr_storage& local, const sockaddr_storage& remote,
    const std::string& peer_process, int64_t peer_claim_ns) {
  auto s =
      std::make_shared<Session>(clock_, config_.detect_ms, config_.replay_cap);
  s->role = role;
  s->endpoints.local = local;
  s->endpoints.remote = remote;
  absl::StatusOr<SessionId> id = SessionIdFor(s->endpoints, role);
  if (!id.ok()) return id.status();
  s->id = *id;
  const sockaddr_storage& client = role == Role::kClient ? local : remote;
  const sockaddr_storage& server = role == Role::kClient ? remote : local;
  s->label = absl::StrCat(FormatAddress(client), "->", FormatAddress(server));
  s->endpoints_known = true;
  s->claim_ns.store(clock_->RealtimeNs());
  s->peer_process = peer_process;
  s->peer_claim_ns = peer_claim_ns;
  s->detected_ns = clock_->NowNs();
  s->episode = 1;
  s->state.store(SessionState::kFailingOver);
  return s;
}

void EngineImpl::RegisterOpened(const std::shared_ptr<Session>& s, int fd) {
  {
    absl::MutexLock lock(&table_.mu);
    table_.Put(s);
    table_.AddName(fd, s.get());
    next_heartbeat_ns_ =
        std::min(next_heartbeat_ns_, clock_->NowNs() + 50'000'000);
  }
  StartThreadsOnce();
}

bool EngineImpl::ListenerAlive(const sockaddr_storage& dest) {
  std::optional<OpenTarget> target = FindListener(dest);
  return target.has_value() && target->alive;
}

bool EngineImpl::ChooseLocalAddress(const sockaddr_storage& dest,
                                    sockaddr_storage* local) {
  MappedAddress d;
  if (!ToMapped(dest, &d)) return false;
  for (const MappedAddress& a : ParseHostAddresses(CurrentHost().addresses)) {
    if (a.IsV4() != d.IsV4()) continue;
    *local = {};
    if (dest.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(local);
      in->sin_family = AF_INET;
      std::memcpy(&in->sin_addr, a.bytes.data() + 12, 4);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(local);
      in6->sin6_family = AF_INET6;
      std::memcpy(&in6->sin6_addr, a.bytes.data(), 16);
    }
    return true;
  }
  return false;
}

std::optional<SysResult> EngineImpl::OpenOverStorage(
    int fd, const sockaddr_storage& dest, bool nonblocking, int tcp_error) {
  std::optional<OpenTarget> target = FindListener(dest);
  if (!target.has_value() || !target->alive) return std::nullopt;
  // The client's end: the address and port the socket was bound to, else an
  // address of this host of the destination's family, with a port of ours.
  sockaddr_storage local = {};
  socklen_t len = sizeof(local);
  os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &len);
  MappedAddress bound;
  const bool bound_address = ToMapped(local, &bound) && !bound.IsUnspecified();
  const uint16_t bound_port = bound.port;
  if (!bound_address && !ChooseLocalAddress(dest, &local)) {
    log_.Warn("connect to ", FormatAddress(dest),
              ": this host has no address to open it over the volume from");
    return std::nullopt;
  }
  SysResult reserve =
      os_->Socket(local.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!reserve.ok()) return std::nullopt;
  const int reserve_fd = static_cast<int>(reserve.value);
  if (bound_port == 0) {
    // Not bound yet (no route: the kernel picks the port only later): the
    // reservation picks one now.
    SetPort(&local, 0);
    len = sizeof(local);
    if (!os_->Bind(reserve_fd, reinterpret_cast<sockaddr*>(&local),
                   AddressLength(local))
             .ok() ||
        !os_->GetSockName(reserve_fd, reinterpret_cast<sockaddr*>(&local), &len)
             .ok()) {
      os_->Close(reserve_fd);
      return std::nullopt;
    }
  }
  auto made = NewOpenedSession(Role::kClient, local, dest, target->process, 0);
  if (!made.ok()) {
    os_->Close(reserve_fd);
    return std::nullopt;
  }
  std::shared_ptr<Session> s = *std::move(made);
  s->opening.store(true);
  s->opened_over_storage = true;
  s->open_error = tcp_error;
  s->open_deadline_ns =
      clock_->NowNs() +
      std::max(config_.detect_ms, config_.peer_timeout_ms) * 1'000'000;
  s->reserve_fd = reserve_fd;
  private_[reserve_fd].store(1, std::memory_order_release);
  RegisterOpened(s, fd);
  absl::Status started;
  if (bound_port != 0) {
    // The application's socket keeps its port until its last reference goes,
    // which a thread of the application blocked in poll() on it may hold for
    // a while yet: both sockets allow the other's bind.
    const int on = 1;
    os_->SetSockOpt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    os_->SetSockOpt(reserve_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  }
  {
    FutexLockHolder send_lock(&s->send_mu);
    absl::MutexLock recv_lock(&s->recv_mu);
    // Before the swap (swap.cc says why).
    s->generation.fetch_add(1);
    started = InstallSocketPair(s.get(), {fd});
    if (!started.ok()) s->generation.fetch_sub(1);
    if (started.ok()) {
      s->on_tcp = false;
      if (nonblocking) HoldUnwritable(s.get());
    }
  }
  if (started.ok() && bound_port != 0) {
    // The port stays this connection's while it has no TCP socket.
    SysResult kept = os_->Bind(reserve_fd, reinterpret_cast<sockaddr*>(&local),
                               AddressLength(local));
    if (!kept.ok()) {
      started = absl::ErrnoToStatus(kept.error,
                                    absl::StrCat("keeping port ", bound_port));
    }
  }
  if (started.ok()) started = StartStoragePath(s.get(), 0, 0);
  FailoverMessage request;
  request.session = s->id;
  request.sender_role = Role::kClient;
  request.from_process = process_id_;
  request.episode = 1;
  request.open_from = FormatAddress(local);
  request.open_to = FormatAddress(dest);
  request.claim = s->claim_ns.load();
  if (started.ok()) {
    started = send_volume_->PostToInbox(
        target->process,
        absl::StrCat("op-", SessionIdHex(s->id), "-", clock_->RealtimeNs()),
        EncodeFailover(request));
  }
  {
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kStorage);
    s->state_changed.SignalAll();
  }
  if (!started.ok()) {
    FailOpen(
        s.get(), tcp_error,
        absl::StrCat("cannot open it over the volume: ", started.message()));
  } else {
    log_.Info("connect to ", FormatAddress(dest), " failed (",
              strerror(tcp_error), "): opening ", s->label,
              " over the volume with ", target->process, "'s listener");
  }
  if (nonblocking) return SysResult::Fail(EINPROGRESS);
  int error = 0;
  {
    absl::MutexLock lock(&s->mu);
    while (s->opening.load() && s->state.load() != SessionState::kClosed) {
      const int64_t left = s->open_deadline_ns - clock_->NowNs();
      if (left <= 0) break;
      s->state_changed.WaitWithTimeout(&s->mu, absl::Nanoseconds(left));
    }
    if (s->opening.load() || s->error != 0 ||
        s->state.load() == SessionState::kClosed) {
      error = s->error != 0 ? s->error : tcp_error;
    }
  }
  if (error == 0) return SysResult::Ok(0);
  FailOpen(s.get(), error, "no answer from the listener's process");
  return SysResult::Fail(error);
}

void EngineImpl::HoldUnwritable(Session* s) {
  // A socket pair end is writable at once; a connecting TCP socket is not.
  // Filling the application's end (shrunk to the minimum) keeps poll, select
  // and epoll from reporting it writable until the answer comes.
  const int tiny = 1;
  os_->SetSockOpt(s->leg.app_end, SOL_SOCKET, SO_SNDBUF, &tiny, sizeof(tiny));
  char filler[4096] = {};
  while (true) {
    SysResult w = os_->Write(s->leg.app_end, filler, sizeof(filler));
    if (!w.ok() || w.value <= 0) break;
    s->held_bytes += static_cast<size_t>(w.value);
  }
}

void EngineImpl::ReleaseHold(Session* s) {
  if (s->held_bytes == 0 || s->leg.app_end < 0) return;
  const int size = 1 << 20;
  os_->SetSockOpt(s->leg.app_end, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  char sink[4096];
  while (s->held_bytes > 0) {
    SysResult r =
        os_->Read(s->leg.eng_end, sink, std::min(sizeof(sink), s->held_bytes));
    if (!r.ok() || r.value <= 0) break;
    s->held_bytes -= static_cast<size_t>(r.value);
  }
}

void EngineImpl::CompleteOpen(Session* s, const FailoverMessage& m) {
  bool expected = true;
  if (!s->opening.compare_exchange_strong(expected, false)) return;
  {
    FutexLockHolder send_lock(&s->send_mu);
    ReleaseHold(s);
  }
  log_.Info("session ", s->label, " opened over the volume: ", m.from_process,
            " has it in its listener's queue");
  {
    absl::MutexLock lock(&s->mu);
    s->state_changed.SignalAll();
  }
  {
    absl::MutexLock lock(&table_.mu);
    if (std::shared_ptr<Session> shared = table_.Find(s); shared != nullptr)
      to_register_.push_back(std::move(shared));
  }
  uint64_t one = 1;
  os_->Write(kick_fd_, &one, sizeof(one));
}

void EngineImpl::FailOpen(Session* s, int error, const std::string& why) {
  bool expected = true;
  if (!s->opening.compare_exchange_strong(expected, false)) return;
  {
    FutexLockHolder send_lock(&s->send_mu);
    ReleaseHold(s);
  }
  EndSession(s, error, absl::StrCat("connect over the volume: ", why));
}

void EngineImpl::HandleOpenAnswer(const FailoverMessage& m) {
  std::shared_ptr<Session> s;
  {
    absl::MutexLock lock(&table_.mu);
    s = table_.Find(KeyOf(m.session, Role::kClient));
  }
  if (s == nullptr || !s->opening.load()) return;  // late: it gave up
  if (m.answer == "accepted") {
    CompleteOpen(s.get(), m);
  } else {
    FailOpen(s.get(), ECONNREFUSED,
             absl::StrCat(m.from_process, " has no listener there"));
  }
}

}  // namespace diskwire
