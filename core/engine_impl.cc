// Adoption of selected sockets and the data path on the application's threads.

#include "core/engine_impl.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "storage/blake2b.h"
#include "storage/dir_volume.h"
#include "storage/volume_open.h"

extern char** environ;

namespace diskwire {
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
    // Debian's abseil checks every Mutex acquisition for lock-order cycles,
    // which more than doubles the cost of the locks on the healthy path
    // (49 ns against 20 ns per lock and unlock). It is a debugging aid; a
    // program that shares this libabsl loses it too (docs/DEPENDENCIES.md).
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    auto created = EngineImpl::Create(*config, os, RealClock::Get());
    if (!created.ok()) {
      std::string line =
          absl::StrCat("diskwire: ", created.status().message(), "\n");
      os->Write(2, line.data(), line.size());
      if (config->passthrough_on_error) return nullptr;
      std::string hint =
          "diskwire: stopping (set DISKWIRE_ON_ERROR=passthrough to run "
          "without diskwire)\n";
      os->Write(2, hint.data(), hint.size());
      std::exit(78);
    }
    return created->release();  // Lives as long as the process.
  }();
  return engine;
}

EngineImpl::EngineImpl(const Config& config, OsCalls* os, const Clock* clock)
    : config_(config),
      os_(os),
      clock_(clock),
      probe_(os),
      log_(config),
      storage_path_(this, os, clock, &log_, &probe_, config.max_lag_ms,
                    &rejected_records_),
      listeners_(os),
      resume_nonce_(RandomBytes(kResumeNonceBytes)) {
  if (config.select.has_udp()) {
    DatagramRelay::Options o;
    o.select = config.select;
    o.storage_mode = config.mode == Mode::kStorage;
    o.detect_ms = config.detect_ms;
    o.peer_timeout_ms = config.peer_timeout_ms;
    o.fd_observer = &fd_marks_;
    relay_ = std::make_unique<DatagramRelay>(o, os, clock, &log_);
  }
}

absl::StatusOr<std::unique_ptr<EngineImpl>> EngineImpl::Create(
    const Config& config, OsCalls* os, const Clock* clock) {
  // The resume handshake and record MACs need it; without it no session
  // could come back to the network.
  if (absl::Status sodium = storage::Blake2b::Available(); !sodium.ok())
    return sodium;
  std::unique_ptr<EngineImpl> e(new EngineImpl(config, os, clock));
  e->process_id_ =
      absl::StrCat(config.node, ".", getpid(), ".", clock->RealtimeNs());
  SysResult wake = os->EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!wake.ok()) return absl::ErrnoToStatus(wake.error, "eventfd");
  e->wake_fd_ = static_cast<int>(wake.value);
  // A daemon that closes every fd it did not open would take the log file's
  // too, and the next file it opened would get the log's lines.
  e->fd_marks_.Opened(e->log_.owned_fd());
  const std::optional<uint64_t> wmem_max = TcpProbe::ReadTcpWmemMax();
  e->limit_send_buffer_ =
      !wmem_max || TcpProbe::SendBufferNeedsLimit(*wmem_max, config.replay_cap);
  e->private_[e->wake_fd_].store(1, std::memory_order_release);
  for (const std::string& warning : config.warnings) e->log_.Warn(warning);
  if (!config.passthrough_on_error) {
    // "fail" means fail: a volume that cannot serve stops the program now,
    // not at its first connection, which would otherwise run without
    // diskwire. Read-only: a process that selects nothing writes nothing.
    for (const std::string& volume : {config.send_volume, config.recv_volume}) {
      absl::Status usable = storage::CheckVolume(volume);
      if (!usable.ok()) {
        return absl::Status(
            usable.code(),
            absl::StrCat("cannot use the volume: ", usable.message()));
      }
    }
  }
  return e;
}

absl::Status EngineImpl::OpenVolumesOnce() {
  if (volumes_open_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&start_mu_);
  if (volumes_open_.load()) return absl::OkStatus();
  if (!volumes_status_.ok()) return volumes_status_;
  storage::DirVolumeOptions options;
  options.node = config_.node;
  options.fd_observer = &fd_marks_;
  absl::Status st;
  if (!config_.key_file.empty()) {
    auto key = storage::LoadMacKeyFile(config_.key_file);
    if (key.ok()) options.mac_key = *key;
    st = key.status();
  }
  if (st.ok()) {
    auto send = storage::OpenVolume(config_.send_volume, options);
    st = send.status();
    if (st.ok()) send_volume_ = std::move(*send);
  }
  if (st.ok() && config_.recv_volume != config_.send_volume) {
    auto recv = storage::OpenVolume(config_.recv_volume, options);
    st = recv.status();
    if (st.ok()) recv_volume_ = std::move(*recv);
  }
  if (!st.ok()) {
    volumes_status_ = st;
    if (config_.passthrough_on_error) {
      log_.Error("cannot open the volume: ", st.message(),
                 "; selected connections run without diskwire "
                 "(DISKWIRE_ON_ERROR=passthrough)");
    }
    return st;
  }
  peers_ =
      std::make_unique<PeerDirectory>(recv(), clock_, config_.peer_timeout_ms);
  volumes_open_.store(true, std::memory_order_release);
  for (storage::Volume* v : OpenVolumes()) {
    for (int fd : v->HeldFds())
      private_[fd].store(1, std::memory_order_release);
  }
  return absl::OkStatus();
}

EngineImpl::~EngineImpl() {
  DrainAtExit();
  for (auto& [pending, tag] : pending_links_) os_->Close(pending->fd);
  pending_links_.clear();
  for (int fd : {wake_fd_, loop_fd_, kick_fd_}) {
    if (fd >= 0) os_->Close(fd);
  }
  for (int fd : resume_listeners_) os_->Close(fd);
}

Session* EngineImpl::SessionFor(int fd) const {
  if (!Owns(fd)) return nullptr;
  return table_.At(fd);
}

bool EngineImpl::FailOver(int fd, const std::string& reason) {
  Session* s = SessionFor(fd);
  return s != nullptr && TriggerFailover(s, reason, "");
}

void EngineImpl::Disown(Session* s) {
  absl::MutexLock lock(&table_.mu);
  table_.UnnameAll(s, clock_->NowNs());
}

bool EngineImpl::Claim(int fd) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return false;
  if (!s->dormant.load()) return true;
  if (Activate(s, fd)) return true;
  // Not even a log line: a sandbox may kill on a write to the log file (sshd
  // sets RLIMIT_FSIZE to 0: SIGXFSZ) or on the send to syslog (SIGSYS).
  Disown(s);
  return false;
}

void EngineImpl::OnListen(int fd) {
  sockaddr_storage local = {};
  socklen_t len = sizeof(local);
  MappedAddress m;
  if (!os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &len).ok() ||
      !ToMapped(local, &m) || !config_.select.MayAcceptOn(m.port)) {
    return;
  }
  if (!OpenVolumesOnce().ok()) return;
  listeners_.Add(fd);
  log_.Info("listening on ", FormatAddress(local),
            ": advertised, so that peers can connect over the volume");
  StartThreadsOnce();
  {
    absl::MutexLock lock(&table_.mu);
    next_heartbeat_ns_ =
        std::min(next_heartbeat_ns_, clock_->NowNs() + 50'000'000);
  }
  uint64_t one = 1;
  if (kick_fd_ >= 0) os_->Write(kick_fd_, &one, sizeof(one));
}

static_assert(DatagramRelay::kMaxFds == Engine::kMaxFds);

bool EngineImpl::StartRelayOnce() {
  if (relay_ == nullptr) return false;
  if (relay_started_.load(std::memory_order_acquire)) return true;
  if (!OpenVolumesOnce().ok()) return false;
  StartThreadsOnce();  // the heartbeat advertises the relay
  std::string id;
  {
    absl::MutexLock lock(&table_.mu);
    id = process_id_;
  }
  relay_->Start(send_volume_.get(), recv(), peers_.get(), id, [this] {
    heartbeat_due_.store(true, std::memory_order_release);
    uint64_t one = 1;
    if (kick_fd_ >= 0) os_->Write(kick_fd_, &one, sizeof(one));
  });
  relay_started_.store(true, std::memory_order_release);
  return true;
}

void EngineImpl::OnDatagramSocket(int fd) {
  if (fd < 0 || fd >= kMaxFds || !StartRelayOnce()) return;
  datagram_[fd].store(1, std::memory_order_release);
}

void EngineImpl::OnDatagramAddressChange(int fd) {
  if (StartRelayOnce()) relay_->OnAddressChange(fd);
}

void EngineImpl::OnDatagramClose(int fd) {
  if (fd < 0 || fd >= kMaxFds) return;
  datagram_[fd].store(0, std::memory_order_release);
  if (relay_ != nullptr) relay_->OnClose(fd);
}

std::optional<SysResult> EngineImpl::CarryDatagram(int fd, const msghdr* msg,
                                                   int flags, int refused) {
  if (!StartRelayOnce()) return std::nullopt;
  return relay_->Carry(fd, msg, flags, refused);
}

void EngineImpl::OnAccept(int /*listen_fd*/, int fd) {
  if (AcceptOverStorage(fd)) return;
  Adopt(fd, Role::kServer, nullptr, 0);
}

void EngineImpl::OnInherited(int fd) {
  if (fd < 0 || fd >= kMaxFds || Owns(fd)) return;
  // Two names of one inherited socket (inetd's 0 and 1) are one session.
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  for (int other = 0; other < kMaxFds; ++other) {
    struct stat ost;
    if (other != fd && Owns(other) && fstat(other, &ost) == 0 &&
        ost.st_ino == st.st_ino && ost.st_dev == st.st_dev) {
      OnDup(other, fd);
      return;
    }
  }
  std::optional<Role> role = InferRole(fd);
  if (role.has_value()) Adopt(fd, *role, nullptr, 0, /*inherited=*/true);
}

std::optional<Role> EngineImpl::InferRole(int fd) {
  sockaddr_storage local = {}, remote = {};
  socklen_t len = sizeof(local);
  if (!os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &len).ok())
    return std::nullopt;
  len = sizeof(remote);
  if (!os_->GetPeerName(fd, reinterpret_cast<sockaddr*>(&remote), &len).ok())
    return std::nullopt;
  const auto* l = reinterpret_cast<const sockaddr*>(&local);
  const auto* r = reinterpret_cast<const sockaddr*>(&remote);
  const bool as_server = config_.select.Matches(l, r, Selector::Role::kAccept);
  const bool as_client = config_.select.Matches(l, r, Selector::Role::kConnect);
  if (as_server != as_client) {
    return as_server ? Role::kServer : Role::kClient;
  }
  if (!as_server) return std::nullopt;
  // Both ways selected: a client's port comes from the ephemeral range.
  auto port_of = [](const sockaddr_storage& a) -> int {
    return a.ss_family == AF_INET
               ? ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port)
               : ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  };
  int lo = 32768, hi = 60999;
  if (FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) {
    if (fscanf(f, "%d %d", &lo, &hi) != 2) lo = 32768, hi = 60999;
    fclose(f);
  }
  auto ephemeral = [&](int port) { return port >= lo && port <= hi; };
  if (ephemeral(port_of(local)) && !ephemeral(port_of(remote)))
    return Role::kClient;
  return Role::kServer;  // inheritance is a server's pattern
}

bool EngineImpl::Activate(Session* s, int fd) {
  {
    FutexLockHolder send_lock(&s->send_mu);
    if (!s->dormant.load() && !s->resync.load()) return true;  // done already
    if (s->dormant.load()) {
      // A child that chrooted, dropped privileges or entered a seccomp
      // sandbox (sshd's network child) cannot carry the session, and must see
      // no call of ours beyond this one: it stays dormant, its I/O passes
      // through.
      // (A directory, or a LUN's device or image file.)
      const int probe = open(config_.send_volume.c_str(), O_PATH | O_CLOEXEC);
      if (probe < 0) return false;
      close(probe);
    }
    auto sample = probe_.Sample(fd);
    if (sample.ok() && s->resumes.load() == 0 &&
        (sample->state == TCP_ESTABLISHED || sample->state == TCP_CLOSE_WAIT)) {
      // What the socket has carried so far, whoever wrote it.
      const uint64_t written =
          sample->WrittenBytes(s->role == Role::kClient, false);
      if (written != s->ring.head()) {
        s->ring.RestartAt(written);
        s->sent_to_socket = written;
      }
    }
    s->claim_ns.store(clock_->RealtimeNs());
    s->resync.store(false);
    s->dormant.store(false);
    absl::MutexLock lock(&s->mu);
    table_.RefreshFlags(s);
  }
  log_.Info("session ", s->label, " claimed by this process (pid ", getpid(),
            ")");
  {
    absl::MutexLock lock(&table_.mu);
    next_heartbeat_ns_ =
        std::min(next_heartbeat_ns_, clock_->NowNs() + 10'000'000);
  }
  StartThreadsOnce();
  uint64_t one = 1;
  if (kick_fd_ >= 0) os_->Write(kick_fd_, &one, sizeof(one));
  if (config_.mode == Mode::kStorage) TriggerFailover(s, "storage mode", "");
  return true;
}

void EngineImpl::Adopt(int fd, Role role, const sockaddr* remote_hint,
                       socklen_t hint_len, bool inherited) {
  if (fd < 0 || fd >= kMaxFds) return;
  int type = 0;
  socklen_t len = sizeof(type);
  if (!os_->GetSockOpt(fd, SOL_SOCKET, SO_TYPE, &type, &len).ok() ||
      type != SOCK_STREAM)
    return;
  auto s =
      std::make_shared<Session>(clock_, config_.detect_ms, config_.replay_cap);
  s->role = role;
  s->dormant.store(inherited);
  s->resync.store(inherited);
  s->maybe_shared.store(inherited);
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
    s->connect_started_ns = clock_->NowNs();
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
  auto own = probe_.ReadTimeouts(fd);
  if (own.ok()) s->app_timeouts = *own;
  absl::Status tuned = probe_.ConfigureSelectedSocket(fd, config_.detect_ms);
  // Keeps the kernel's send queue within half the ring, so that a trim always
  // makes room and a full ring never leaves a writable socket for the
  // application to spin on.
  if (tuned.ok() && limit_send_buffer_)
    tuned = probe_.LimitSendBuffer(fd, config_.replay_cap);
  if (tuned.ok() && !peer.ok()) {
    tuned = probe_.BoundConnect(fd, config_.detect_ms);
    s->connect_bounded = tuned.ok();
  }
  if (!tuned.ok()) log_.Warn("selected socket ", fd, ": ", tuned.message());
  {
    absl::MutexLock lock(&table_.mu);
    table_.AddConnecting(s);
    table_.AddName(fd, s.get());
  }
  // A dormant session needs the threads only once this process uses it.
  if (!inherited) StartThreadsOnce();
  if (peer.ok()) FinishAdoption(s.get(), fd);
}

bool EngineImpl::FinishAdoption(Session* s, int fd) {
  if (s->endpoints_known) return true;
  socklen_t len = sizeof(s->endpoints.remote);
  sockaddr_storage remote = {};
  if (!os_->GetPeerName(fd, reinterpret_cast<sockaddr*>(&remote), &len).ok())
    return false;
  if (s->connect_bounded) {
    // Connected: the socket's own user timeout again.
    absl::Status ended = probe_.EndConnectBound(
        fd, s->app_timeouts.has_value() ? s->app_timeouts->values[4] : 0);
    if (!ended.ok()) log_.Warn("session on fd ", fd, ": ", ended.message());
    s->connect_bounded = false;
  }
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
    absl::MutexLock lock(&table_.mu);
    shared = table_.TakeConnecting(s);
    if (shared == nullptr)
      return s->endpoints_known;  // another thread finished it
    std::shared_ptr<Session> old = table_.Put(shared);
    if (old != nullptr && old->state.load() != SessionState::kClosed) {
      log_.Warn("session ", s->label,
                " replaces a live session with the same endpoints");
    }
    s->endpoints_known = true;
    s->claim_ns.store(clock_->RealtimeNs());
    s->adopted_ns = clock_->NowNs();
    // A new session should be visible to its peer's failover soon, not a whole
    // interval later.
    next_heartbeat_ns_ =
        std::min(next_heartbeat_ns_, clock_->NowNs() + 50'000'000);
  }
  if (s->dormant.load()) {
    log_.Info("inherited ", s->label, " session ", SessionIdHex(s->id),
              " as fd ", fd, " (dormant until this process uses it)");
    return true;
  }
  log_.Info("selected ", s->label, " session ", SessionIdHex(s->id));
  if (config_.mode == Mode::kStorage) TriggerFailover(s, "storage mode", "");
  return true;
}

}  // namespace diskwire
