#include "core/datagram_relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/fork_mutex.h"
#include "core/datagram_relay_internal.h"
#include "core/datagram_wire.h"
#include "core/host_identity.h"
#include "core/identity.h"

namespace diskwire {

using datagram_relay_internal::FormatIp;

namespace {

// A process's queue to one peer; past it datagrams are dropped, as a full
// socket buffer drops them.
constexpr size_t kQueueBytes = 4 << 20;
constexpr size_t kMaxDatagram = 65507;  // IPv4's limit, the smaller
// How long a send may reuse its socket's last network decision before the
// lookups run again (which also keep the path probed).
constexpr int64_t kRecheckNs = 100 * kNsPerMs;

// The fast path's key of a send: its destination (null: the connected peer)
// and the epoch. Never 0, the key of no decision.
uint64_t FastKey(const void* name, socklen_t len, uint64_t epoch) {
  uint64_t a = 0x243f6a8885a308d3, b = 0x13198a2e03707344;
  const auto* sa = static_cast<const sockaddr*>(name);
  if (sa != nullptr && sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* in = static_cast<const sockaddr_in*>(name);
    uint32_t ip;
    std::memcpy(&ip, &in->sin_addr, 4);
    a = (uint64_t{ip} << 16) | in->sin_port;
  } else if (sa != nullptr && sa->sa_family == AF_INET6 &&
             len >= sizeof(sockaddr_in6)) {
    const auto* in6 = static_cast<const sockaddr_in6*>(name);
    std::memcpy(&a, &in6->sin6_addr, 8);
    std::memcpy(&b, reinterpret_cast<const char*>(&in6->sin6_addr) + 8, 8);
    b ^= (uint64_t{in6->sin6_port} << 48) | 6;
  } else if (sa != nullptr) {
    return 0;  // never reused
  }
  uint64_t h = (a * 0x9e3779b97f4a7c15) ^ (b * 0xc2b2ae3d27d4eb4f) ^
               (epoch * 0x165667b19e3779f9);
  h ^= h >> 29;
  return h | 1;
}

bool IsLoopback(const MappedAddress& a) {
  static constexpr uint8_t kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 1};
  return (a.IsV4() && a.bytes[12] == 127) ||
         std::memcmp(a.bytes.data(), kV6Loopback, 16) == 0;
}

// A datagram to the loopback reaches a receiver of the same host bound to the
// wildcard (whose advertised host addresses never list the loopback).
bool LoopbackReaches(const ListenAddress& r, const MappedAddress& dest) {
  MappedAddress bound;
  if (!ToMapped(r.addr, &bound) || bound.port != dest.port) return false;
  if (!bound.IsUnspecified()) return bound == dest;
  if (r.addr.ss_family == AF_INET) return dest.IsV4();
  return !(r.v6only && dest.IsV4());
}

}  // namespace

namespace datagram_relay_internal {

sockaddr_storage ToSockaddr(const DatagramPaths::Address& a, uint16_t port,
                            bool as_v6) {
  sockaddr_storage out = {};
  MappedAddress m;
  m.bytes = a;
  if (m.IsV4() && !as_v6) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, a.data() + 12, 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, a.data(), 16);
  }
  return out;
}

std::string FormatIp(const DatagramPaths::Address& a) {
  const std::string with_port = FormatAddress(ToSockaddr(a, 0, false));
  return with_port.substr(0, with_port.rfind(':'));
}

}  // namespace datagram_relay_internal

DatagramRelay::DatagramRelay(const Options& options, OsCalls* os,
                             const Clock* clock, Logger* log)
    : options_(options),
      os_(os),
      clock_(clock),
      log_(log),
      paths_(
          DatagramPaths::Options{options.detect_ms * kNsPerMs, 30 * kNsPerSec}),
      fast_(new FastSlot[kMaxFds]),
      injector_(os, options.fd_observer) {}

DatagramRelay::~DatagramRelay() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  Kick();
  if (thread_.joinable()) thread_.join();
  if (watcher_ != nullptr) Forget(watcher_->fd());
  watcher_.reset();
  for (int fd : {kick_fd_, probe_fd_, epoll_fd_}) {
    if (fd < 0) continue;
    Forget(fd);
    os_->Close(fd);
  }
}

void DatagramRelay::Own(int fd) {
  if (options_.fd_observer != nullptr && fd >= 0)
    options_.fd_observer->Opened(fd);
}

void DatagramRelay::Forget(int fd) {
  if (options_.fd_observer != nullptr && fd >= 0)
    options_.fd_observer->Closing(fd);
}

void DatagramRelay::Start(storage::Volume* send, storage::Volume* recv,
                          PeerDirectory* peers, const std::string& process_id,
                          std::function<void()> heartbeat_soon) {
  absl::MutexLock lock(&mu_);
  if (running_) return;
  send_ = send;
  recv_ = recv;
  directory_ = peers;
  process_id_ = process_id;
  tag_ = IncarnationTag(process_id, 0);
  host_key_ = CurrentHost().key;
  heartbeat_soon_ = std::move(heartbeat_soon);
  std::random_device random;
  nonce_ = (uint64_t{random()} << 32) | random();
  OpenProbeSocket();
  SysResult kick = os_->EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  SysResult ep = os_->EpollCreate1(EPOLL_CLOEXEC);
  if (!kick.ok() || !ep.ok()) {
    log_->Error(
        "UDP relay: cannot create its event fds; selected datagrams "
        "go over the network only");
    return;
  }
  kick_fd_ = static_cast<int>(kick.value);
  epoll_fd_ = static_cast<int>(ep.value);
  for (int fd : {kick_fd_, epoll_fd_}) Own(fd);
  for (int fd : {kick_fd_, probe_fd_}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    os_->EpollCtl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  auto watcher = recv->NewWatcher({});
  if (watcher.ok()) {
    watcher_ = std::move(*watcher);
    Own(watcher_->fd());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = watcher_->fd();
    os_->EpollCtl(epoll_fd_, EPOLL_CTL_ADD, watcher_->fd(), &ev);
  }
  running_ = true;
  stop_ = false;
  thread_ = std::thread([this] { ThreadMain(); });
}

void DatagramRelay::OpenProbeSocket() {
  // One dual-stack socket answers and sends probes of both families; where
  // IPv6 is off, an IPv4 one.
  SysResult r =
      os_->Socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bool v6 = r.ok();
  if (v6) {
    int off = 0;
    os_->SetSockOpt(static_cast<int>(r.value), IPPROTO_IPV6, IPV6_V6ONLY, &off,
                    sizeof(off));
  } else {
    r = os_->Socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (!r.ok()) {
    log_->Error(
        "UDP relay: cannot open its probe socket: ", std::strerror(r.error),
        "; a dead path is not detected, datagrams stay on the network");
    return;
  }
  probe_fd_ = static_cast<int>(r.value);
  Own(probe_fd_);
  probe_v6_ = v6;
  sockaddr_storage any = {};
  any.ss_family = v6 ? AF_INET6 : AF_INET;
  socklen_t len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  os_->Bind(probe_fd_, reinterpret_cast<sockaddr*>(&any), len);
  sockaddr_storage bound = {};
  len = sizeof(bound);
  MappedAddress m;
  if (os_->GetSockName(probe_fd_, reinterpret_cast<sockaddr*>(&bound), &len)
          .ok() &&
      ToMapped(bound, &m)) {
    probe_port_ = m.port;
  }
}

void DatagramRelay::Kick() {
  uint64_t one = 1;
  if (kick_fd_ >= 0) os_->Write(kick_fd_, &one, sizeof(one));
}

void DatagramRelay::RefreshSocket(int fd, Socket* s) {
  socklen_t len = sizeof(s->local);
  os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&s->local), &len);
  len = sizeof(s->peer);
  if (!os_->GetPeerName(fd, reinterpret_cast<sockaddr*>(&s->peer), &len).ok())
    s->peer.ss_family = AF_UNSPEC;
  int v6only = 0;
  len = sizeof(v6only);
  s->v6only =
      s->local.ss_family == AF_INET6 &&
      os_->GetSockOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len).ok() &&
      v6only != 0;
}

void DatagramRelay::OnAddressChange(int fd) {
  bool advertise = false;
  {
    absl::MutexLock lock(&mu_);
    Socket& s = sockets_[fd];
    RefreshSocket(fd, &s);
    if (fd >= 0 && fd < kMaxFds) fast_[fd].key.store(0);
    MappedAddress m;
    if (!s.advertised && ToMapped(s.local, &m) && m.port != 0 &&
        options_.select.MayReceiveDatagramsOn(m.port)) {
      s.advertised = advertise = true;
    }
  }
  if (advertise) {
    absl::MutexLock lock(&mu_);
    if (heartbeat_soon_) heartbeat_soon_();
  }
}

void DatagramRelay::OnClose(int fd) {
  absl::MutexLock lock(&mu_);
  sockets_.erase(fd);
  if (fd >= 0 && fd < kMaxFds) fast_[fd].key.store(0);
}

const DatagramRelay::Peer* DatagramRelay::ReceiverFor(
    const sockaddr_storage& dest, std::string* process, int64_t now) const {
  MappedAddress to;
  const bool loopback = ToMapped(dest, &to) && IsLoopback(to);
  // Of two processes that advertise the address (a daemon restarted while
  // the old one's heartbeat is not yet stale), the one heard from last.
  const Peer* best = nullptr;
  for (const auto& [id, p] : peers_) {
    if (!Alive(p, now) || (best != nullptr && p.alive_ns <= best->alive_ns))
      continue;
    const bool same_host = !p.host_key.empty() && p.host_key == host_key_;
    for (const ListenAddress& r : p.receivers) {
      if (ListenerAccepts(r, p.host, dest) ||
          (loopback && same_host && LoopbackReaches(r, to))) {
        *process = id;
        best = &p;
        break;
      }
    }
  }
  return best;
}

std::optional<MappedAddress> DatagramRelay::SourceFor(
    const sockaddr_storage& dest) {
  MappedAddress d;
  if (!ToMapped(dest, &d)) return std::nullopt;
  auto it = sources_.find(d.bytes);
  if (it != sources_.end()) return it->second;
  // Ask the routing table, as the kernel does for an unbound socket.
  SysResult r = os_->Socket(dest.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (!r.ok()) return std::nullopt;
  const int fd = static_cast<int>(r.value);
  sockaddr_storage local = {};
  socklen_t len = sizeof(local);
  MappedAddress m;
  const bool ok =
      os_->Connect(fd, reinterpret_cast<const sockaddr*>(&dest),
                   AddressLength(dest))
          .ok() &&
      os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &len).ok() &&
      ToMapped(local, &m);
  os_->Close(fd);
  if (!ok) return std::nullopt;
  sources_[d.bytes] = m;
  return m;
}

std::optional<SysResult> DatagramRelay::Carry(int fd, const msghdr* msg,
                                              int /*flags*/, int refused) {
  if (fd < 0 || fd >= kMaxFds) return std::nullopt;
  // The fast path's clock: a few ms coarse, and a third of the cost.
  timespec coarse;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse);
  const int64_t coarse_now = coarse.tv_sec * kNsPerSec + coarse.tv_nsec;
  const bool named = msg->msg_name != nullptr && msg->msg_namelen > 0;
  const uint64_t key =
      FastKey(named ? msg->msg_name : nullptr, named ? msg->msg_namelen : 0,
              epoch_.load(std::memory_order_acquire));
  FastSlot& slot = fast_[fd];
  if (refused == 0 && key != 0 &&
      slot.key.load(std::memory_order_relaxed) == key &&
      coarse_now < slot.until_ns.load(std::memory_order_relaxed)) {
    return std::nullopt;  // the healthy path: as last time
  }
  const int64_t now = clock_->NowNs();
  bool advertise = false;
  std::optional<SysResult> result;
  {
    absl::MutexLock lock(&mu_);
    if (!running_) return std::nullopt;
    auto [it, fresh] = sockets_.try_emplace(fd);
    Socket& s = it->second;
    MappedAddress local;
    if (fresh || !ToMapped(s.local, &local) || local.port == 0) {
      RefreshSocket(fd, &s);  // bound by the kernel at the first send
    }
    sockaddr_storage dest = {};
    if (msg->msg_name != nullptr && msg->msg_namelen > 0) {
      std::memcpy(&dest, msg->msg_name,
                  std::min<size_t>(msg->msg_namelen, sizeof(dest)));
    } else {
      dest = s.peer;
    }
    MappedAddress to;
    if (!ToMapped(dest, &to)) return std::nullopt;
    auto network = [&] {
      slot.key.store(key, std::memory_order_relaxed);
      slot.until_ns.store(coarse_now + kRecheckNs, std::memory_order_relaxed);
      return std::nullopt;
    };
    if (!options_.select.MatchesDatagram(
            reinterpret_cast<const sockaddr*>(&s.local),
            reinterpret_cast<const sockaddr*>(&dest))) {
      return network();
    }
    std::string receiver;
    const Peer* peer = ReceiverFor(dest, &receiver, now);
    if (peer == nullptr) return network();  // no diskwire there
    if (!s.advertised && ToMapped(s.local, &local) && local.port != 0) {
      s.advertised = advertise = true;  // the answers come to this port
    }
    paths_.NoteUse(to.bytes, now);
    probe_ports_[to.bytes] = peer->probe_port;
    if (refused != 0 && paths_.MarkDown(to.bytes, now)) {
      ++epoch_;
      log_->Info("datagrams to ", FormatIp(to.bytes),
                 " go over the volume: the network refused one (",
                 std::strerror(refused), ")");
    }
    if (!options_.storage_mode && !paths_.IsDown(to.bytes) && refused == 0) {
      // Learn the source address while there is a route to ask: a link
      // that goes down takes its route with it.
      if (ToMapped(s.local, &local) && local.IsUnspecified()) SourceFor(dest);
      if (advertise && heartbeat_soon_) heartbeat_soon_();
      return network();
    }
    // The volume. A socket not bound yet gets its port as the kernel would
    // give it at the first send: the answers come to it.
    if (!ToMapped(s.local, &local) || local.port == 0) {
      sockaddr_storage any = {};
      any.ss_family = s.local.ss_family == AF_INET6 ? AF_INET6 : AF_INET;
      os_->Bind(fd, reinterpret_cast<const sockaddr*>(&any),
                AddressLength(any));
      RefreshSocket(fd, &s);
      if (!ToMapped(s.local, &local) || local.port == 0) return std::nullopt;
      if (!s.advertised) s.advertised = advertise = true;
    }
    // The datagram's source is the socket's address, or the one the kernel
    // would choose for a wildcard socket.
    std::optional<MappedAddress> from;
    if (ToMapped(s.local, &local) && !local.IsUnspecified()) {
      from = local;
    } else {
      from = SourceFor(dest);
      if (from) from->port = local.port;
    }
    size_t size = 0;
    for (size_t i = 0; i < msg->msg_iovlen; ++i)
      size += msg->msg_iov[i].iov_len;
    if (size > kMaxDatagram) return SysResult::Fail(EMSGSIZE);
    if (!from) return std::nullopt;
    std::string data;
    data.reserve(size);
    for (size_t i = 0; i < msg->msg_iovlen; ++i) {
      data.append(static_cast<const char*>(msg->msg_iov[i].iov_base),
                  msg->msg_iov[i].iov_len);
    }
    Outbound& o = out_[receiver];
    if (o.channel.empty()) o.channel = absl::StrCat("u-", tag_, "-", peer->tag);
    if (o.queued_bytes + data.size() > kQueueBytes) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
    } else {
      o.queue.push_back(EncodeCarriedDatagram(*from, to, data));
      o.queued_bytes += o.queue.back().size();
    }
    if (advertise && heartbeat_soon_) heartbeat_soon_();
    result = SysResult::Ok(static_cast<ssize_t>(size));
  }
  Kick();
  return result;
}

void DatagramRelay::Fill(ProcessReport::Udp* out) {
  absl::MutexLock lock(&mu_);
  if (!running_) return;
  out->tag = tag_;
  out->probe_port = probe_port_;
  out->out_storage = out_storage_.load(std::memory_order_relaxed);
  out->in_storage = in_storage_.load(std::memory_order_relaxed);
  out->dropped = dropped_.load(std::memory_order_relaxed);
  for (auto& [fd, s] : sockets_) {
    if (!s.advertised) continue;
    ListenAddress l;
    l.addr = s.local;
    l.v6only = s.v6only;
    const std::string text = FormatListenAddress(l);
    if (std::find(out->receivers.begin(), out->receivers.end(), text) ==
        out->receivers.end()) {
      out->receivers.push_back(text);
    }
  }
}

void DatagramRelay::BeforeFork() { mu_.Lock(); }
void DatagramRelay::AfterForkParent() { mu_.Unlock(); }

void DatagramRelay::AfterForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // The thread stayed in the parent. The child's relay starts again on its
  // first use, with an identity of its own; the parent's writers, readers and
  // fds are the parent's, released without a word to the volume. The fds they
  // and the relay hold are private (Options::fd_observer): the engine's fork
  // handler closed the child's copies already.
  if (thread_.joinable()) thread_.detach();  // never started: nothing to leave
  for (auto& [id, o] : out_) (void)o.writer.release();
  out_.clear();
  for (auto& [id, in] : in_) (void)in.reader.release();
  in_.clear();
  (void)watcher_.release();
  peers_.clear();
  probes_.clear();
  running_ = false;
  if (options_.fd_observer == nullptr) {
    for (int fd : {kick_fd_, probe_fd_, epoll_fd_}) {
      if (fd >= 0) os_->Close(fd);
    }
  }
  kick_fd_ = probe_fd_ = epoll_fd_ = -1;
  injector_.AfterForkChild();
  probe_port_ = 0;
  RenewInForkChild(&mu_);
}

}  // namespace diskwire
