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
#include "core/datagram_wire.h"
#include "core/host_identity.h"
#include "core/identity.h"

namespace diskwire {
namespace {

constexpr int64_t kRefreshNs = 250 * kNsPerMs;
// Datagrams older than this are trimmed from the volume whether or not the
// receiver read them: a datagram that late is one the application has long
// given up on, and UDP promised nothing.
constexpr int64_t kKeepNs = 60 * kNsPerSec;
// A process's queue to one peer; past it datagrams are dropped, as a full
// socket buffer drops them.
constexpr size_t kQueueBytes = 4 << 20;
constexpr size_t kMaxDatagram = 65507;  // IPv4's limit, the smaller
constexpr size_t kReadBudget = 4 << 20;
// How long a send may reuse its socket's last network decision before the
// lookups run again (which also keep the path probed).
constexpr int64_t kRecheckNs = 100 * kNsPerMs;

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

std::string FormatIp(const DatagramPaths::Address& a) {
  const std::string with_port = FormatAddress(ToSockaddr(a, 0, false));
  return with_port.substr(0, with_port.rfind(':'));
}

}  // namespace

DatagramRelay::DatagramRelay(const Options& options, OsCalls* os,
                             const Clock* clock, Logger* log)
    : options_(options),
      os_(os),
      clock_(clock),
      log_(log),
      paths_(
          DatagramPaths::Options{options.detect_ms * kNsPerMs, 30 * kNsPerSec}),
      fast_(new FastSlot[kMaxFds]),
      injector_(os) {}

DatagramRelay::~DatagramRelay() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  Kick();
  if (thread_.joinable()) thread_.join();
  for (int fd : {kick_fd_, probe_fd_, epoll_fd_}) {
    if (fd >= 0) os_->Close(fd);
  }
}

void DatagramRelay::Start(storage::Volume* send, storage::Volume* recv,
                          const std::string& process_id,
                          std::function<void()> heartbeat_soon) {
  absl::MutexLock lock(&mu_);
  if (running_) return;
  send_ = send;
  recv_ = recv;
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
    if (!Alive(p, now) || (best != nullptr && p.seen_ns <= best->seen_ns))
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

void DatagramRelay::ThreadMain() {
  epoll_event events[8];
  for (;;) {
    const int64_t now = clock_->NowNs();
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    if (now >= next_refresh_ns_) {
      RefreshPeers(now);
      next_refresh_ns_ = now + kRefreshNs;
    }
    ReadProbes(now);
    SendProbes(now);
    FlushOutbound(now);
    ReadInbound();
    int64_t next = next_refresh_ns_;
    {
      absl::MutexLock lock(&mu_);
      next = std::min(next, paths_.NextDeadline());
    }
    if (watcher_ != nullptr &&
        watcher_->poll_interval() != absl::InfiniteDuration()) {
      next = std::min(
          next, now + absl::ToInt64Nanoseconds(watcher_->poll_interval()));
    }
    const int64_t wait_ms = std::clamp<int64_t>(
        (next - clock_->NowNs() + kNsPerMs - 1) / kNsPerMs, 0, 1000);
    SysResult n =
        os_->EpollWait(epoll_fd_, events, 8, static_cast<int>(wait_ms));
    for (int i = 0; n.ok() && i < n.value; ++i) {
      if (events[i].data.fd == kick_fd_) {
        uint64_t count;
        os_->Read(kick_fd_, &count, sizeof(count));
      } else if (watcher_ != nullptr && events[i].data.fd == watcher_->fd()) {
        storage::VolumeWatcher::Changes changes;
        watcher_->Drain(&changes).IgnoreError();  // every channel is read
      }
    }
  }
  // Exit: what the application already sent goes out.
  FlushOutbound(clock_->NowNs());
}

void DatagramRelay::RefreshPeers(int64_t now) {
  storage::Volume* recv;
  std::string self;
  std::string my_tag;
  {
    absl::MutexLock lock(&mu_);
    recv = recv_;
    self = process_id_;
    my_tag = tag_;
  }
  auto listing = recv->ListHeartbeats();
  if (!listing.ok()) return;
  const int64_t realtime = clock_->RealtimeNs();
  const int64_t timeout = options_.peer_timeout_ms * kNsPerMs;
  std::vector<std::pair<std::string, std::string>> to_open;  // id, channel
  std::vector<std::string> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const storage::Heartbeat& hb : listing->heartbeats) {
      if (hb.process_id == self) continue;
      auto report = DecodeProcessReport(hb.payload);
      if (!report.ok() || report->udp.tag.empty()) continue;
      const std::string key = absl::StrCat(hb.sequence, "#", hb.time_ns);
      auto [it, fresh] = peers_.try_emplace(hb.process_id);
      Peer& p = it->second;
      if (fresh && realtime - static_cast<int64_t>(hb.time_ns) > timeout) {
        peers_.erase(it);  // a heartbeat left by a process long gone
        continue;
      }
      if (p.seen_key != key) {
        p.seen_key = key;
        p.seen_ns = now;
      }
      p.tag = report->udp.tag;
      p.host_key = report->host;
      p.probe_port = report->udp.probe_port;
      p.host = ParseHostAddresses(report->addresses);
      p.receivers.clear();
      for (const std::string& text : report->udp.receivers) {
        auto r = ParseListenAddress(text);
        if (r.ok()) p.receivers.push_back(*r);
      }
    }
    std::string signature;
    for (auto it = peers_.begin(); it != peers_.end();) {
      if (Alive(it->second, now)) {
        absl::StrAppend(&signature, it->first, "|", it->second.tag, "|");
        for (const ListenAddress& r : it->second.receivers)
          absl::StrAppend(&signature, FormatListenAddress(r), ",");
        for (const MappedAddress& a : it->second.host)
          signature.append(reinterpret_cast<const char*>(a.bytes.data()), 16);
        signature.push_back('\n');
        if (!in_.count(it->first)) {
          to_open.push_back(
              {it->first, absl::StrCat("u-", it->second.tag, "-", my_tag)});
        }
        ++it;
        continue;
      }
      gone.push_back(it->first);
      it = peers_.erase(it);
    }
    if (signature != peers_signature_) {
      peers_signature_ = std::move(signature);
      ++epoch_;
    }
  }
  for (const std::string& id : gone) {
    in_.erase(id);
    std::unique_ptr<storage::ChannelWriter> writer;
    std::string channel;
    {
      absl::MutexLock lock(&mu_);
      auto it = out_.find(id);
      if (it == out_.end()) continue;
      writer = std::move(it->second.writer);
      channel = it->second.channel;
      out_.erase(it);
    }
    writer.reset();
    storage::Volume* send;
    {
      absl::MutexLock lock(&mu_);
      send = send_;
    }
    send->RemoveChannel(channel).IgnoreError();
  }
  for (auto& [id, channel] : to_open) {
    auto reader = recv->OpenReader(channel, 0);
    if (!reader.ok()) {
      log_->Warn("UDP relay: reading ", channel, ": ",
                 reader.status().message());
      continue;
    }
    if (watcher_ != nullptr) watcher_->Watch(channel).IgnoreError();
    in_[id] = Inbound{channel, std::move(*reader), 0};
  }
}

void DatagramRelay::ReadProbes(int64_t now) {
  if (probe_fd_ < 0) return;
  char buf[64];
  for (;;) {
    sockaddr_storage from = {};
    iovec iov{buf, sizeof(buf)};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    SysResult n = os_->RecvMsg(probe_fd_, &msg, MSG_DONTWAIT);
    if (!n.ok()) {
      if (n.error == EINTR) continue;
      return;
    }
    std::optional<DatagramProbe> probe =
        DecodeProbe(absl::string_view(buf, static_cast<size_t>(n.value)));
    if (!probe) continue;
    if (probe->kind == DatagramProbe::Kind::kPing) {
      probe->kind = DatagramProbe::Kind::kPong;
      std::string pong = EncodeProbe(*probe);
      iovec out{pong.data(), pong.size()};
      msghdr reply{};
      reply.msg_name = &from;
      reply.msg_namelen = msg.msg_namelen;
      reply.msg_iov = &out;
      reply.msg_iovlen = 1;
      os_->SendMsg(probe_fd_, &reply, MSG_DONTWAIT);
      continue;
    }
    if (probe->nonce != nonce_) continue;
    absl::MutexLock lock(&mu_);
    auto it = probes_.find(probe->sequence);
    if (it == probes_.end()) continue;
    const DatagramPaths::Address address = it->second;
    probes_.erase(probes_.begin(), std::next(it));
    if (paths_.OnAnswer(address, now)) {
      ++epoch_;
      log_->Info("datagrams to ", FormatIp(address),
                 " are back on the network: the peer's probe answers again");
    }
  }
}

void DatagramRelay::SendProbes(int64_t now) {
  std::vector<std::pair<sockaddr_storage, std::string>> sends;
  {
    absl::MutexLock lock(&mu_);
    const bool v6 = probe_v6_;
    for (const DatagramPaths::Address& a : paths_.DueProbes(now)) {
      auto port = probe_ports_.find(a);
      if (port == probe_ports_.end() || port->second == 0) continue;
      DatagramProbe p;
      p.nonce = nonce_;
      p.sequence = ++sequence_;
      probes_[p.sequence] = a;
      sends.push_back({ToSockaddr(a, port->second, v6), EncodeProbe(p)});
    }
    // Unanswered probes are forgotten after a few hundred.
    while (probes_.size() > 256) probes_.erase(probes_.begin());
    if (!options_.storage_mode) {
      for (const DatagramPaths::Address& a : paths_.Expire(now)) {
        ++epoch_;
        log_->Info("datagrams to ", FormatIp(a),
                   " go over the volume: the peer's probe has not answered "
                   "for ",
                   options_.detect_ms, " ms");
      }
    }
  }
  for (auto& [dest, bytes] : sends) {
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_name = &dest;
    msg.msg_namelen = AddressLength(dest);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    os_->SendMsg(probe_fd_, &msg, MSG_DONTWAIT);
  }
}

void DatagramRelay::FlushOutbound(int64_t now) {
  std::vector<std::pair<Outbound*, std::deque<std::string>>> work;
  storage::Volume* send;
  {
    absl::MutexLock lock(&mu_);
    send = send_;
    for (auto& [id, o] : out_) {
      if (o.queue.empty()) continue;
      work.push_back({&o, std::move(o.queue)});
      o.queue.clear();
      o.queued_bytes = 0;
    }
  }
  for (auto& [o, queue] : work) {
    if (o->writer == nullptr) {
      auto writer = send->OpenWriter(o->channel, {});
      if (!writer.ok()) {
        dropped_.fetch_add(queue.size(), std::memory_order_relaxed);
        log_->Warn("UDP relay: opening ", o->channel, ": ",
                   writer.status().message(), "; ", queue.size(),
                   " datagrams dropped");
        continue;
      }
      o->writer = std::move(*writer);
      o->offset = o->writer->end_offset();
    }
    std::vector<storage::Record> records;
    records.reserve(queue.size());
    uint64_t offset = o->offset;
    for (std::string& payload : queue) {
      storage::Record r;
      r.header.stream_offset = offset;
      offset += payload.size();
      r.payload = std::move(payload);
      records.push_back(std::move(r));
    }
    absl::Status appended = o->writer->Append(records);
    if (!appended.ok()) {
      dropped_.fetch_add(records.size(), std::memory_order_relaxed);
      log_->Warn("UDP relay: appending to ", o->channel, ": ",
                 appended.message(), "; ", records.size(),
                 " datagrams dropped");
      continue;
    }
    o->offset = offset;
    out_storage_.fetch_add(records.size(), std::memory_order_relaxed);
    o->appended.push_back({now, offset});
    uint64_t trim = 0;
    while (!o->appended.empty() && now - o->appended.front().first > kKeepNs) {
      trim = o->appended.front().second;
      o->appended.pop_front();
    }
    if (trim > 0) o->writer->TrimBelow(trim).IgnoreError();
  }
}

void DatagramRelay::ReadInbound() {
  for (auto& [id, in] : in_) {
    std::vector<storage::Record> records;
    absl::StatusOr<size_t> n = in.reader->ReadAvailable(&records, kReadBudget);
    if (!n.ok()) {
      log_->Warn("UDP relay: reading ", in.channel, ": ", n.status().message(),
                 "; reading on from its newest datagram");
      in.reader->SkipTo(in.next_offset + 1);
      continue;
    }
    for (const storage::Record& r : records) {
      if (r.header.stream_offset < in.next_offset) continue;  // seen
      in.next_offset = r.header.stream_offset + r.payload.size();
      auto d = DecodeCarriedDatagram(r.payload);
      if (!d.ok()) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        log_->Warn("UDP relay: ", in.channel, ": ", d.status().message());
        continue;
      }
      absl::Status delivered = injector_.Deliver(*d);
      if (!delivered.ok()) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        if (!injector_failed_) {
          injector_failed_ = true;
          log_->Error(
              "UDP relay: cannot hand datagrams that crossed the volume to "
              "their socket: ",
              delivered.message(),
              absl::IsPermissionDenied(delivered)
                  ? " (a raw socket needs CAP_NET_RAW: run the service as "
                    "root or grant it the capability)"
                  : "");
        }
        continue;
      }
      in_storage_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void DatagramRelay::BeforeFork() { mu_.Lock(); }
void DatagramRelay::AfterForkParent() { mu_.Unlock(); }

void DatagramRelay::AfterForkChild() {
  // The thread stayed in the parent. The child's relay starts again on its
  // first use, with an identity of its own; the parent's writers, readers and
  // fds are the parent's (released without closing what they hold).
  thread_.detach();
  for (auto& [id, o] : out_) (void)o.writer.release();
  out_.clear();
  for (auto& [id, in] : in_) (void)in.reader.release();
  in_.clear();
  (void)watcher_.release();
  peers_.clear();
  probes_.clear();
  running_ = false;
  for (int fd : {kick_fd_, probe_fd_, epoll_fd_}) {
    if (fd >= 0) os_->Close(fd);
  }
  kick_fd_ = probe_fd_ = epoll_fd_ = -1;
  probe_port_ = 0;
  mu_.Unlock();
}

}  // namespace diskwire
