// The UDP relay's own thread (core/datagram_relay.h): it learns the peers
// from their heartbeats, answers and sends liveness probes, appends the
// queued datagrams to their channels, and hands the datagrams addressed to
// this process to their sockets.

#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/datagram_relay.h"
#include "core/datagram_relay_internal.h"
#include "core/datagram_wire.h"
#include "core/identity.h"

namespace diskwire {

using datagram_relay_internal::FormatIp;
using datagram_relay_internal::ToSockaddr;

namespace {

constexpr int64_t kRefreshNs = 250 * kNsPerMs;
// Datagrams older than this are trimmed from the volume whether or not the
// receiver read them: a datagram that late is one the application has long
// given up on, and UDP promised nothing.
constexpr int64_t kKeepNs = 60 * kNsPerSec;
constexpr size_t kReadBudget = 4 << 20;

}  // namespace

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
  PeerDirectory* directory;
  std::string self;
  std::string my_tag;
  {
    absl::MutexLock lock(&mu_);
    recv = recv_;
    directory = directory_;
    self = process_id_;
    my_tag = tag_;
  }
  auto peers = directory->Refresh();
  if (!peers.ok()) return;
  std::vector<std::pair<std::string, std::string>> to_open;  // id, channel
  std::vector<std::string> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const PeerProcess& process : (*peers)->processes()) {
      if (process.id == self || !process.report.has_value()) continue;
      const ProcessReport* report = &*process.report;
      if (report->udp.tag.empty()) continue;
      // A heartbeat left by a process long gone is no peer.
      if (!process.alive && !peers_.count(process.id)) continue;
      Peer& p = peers_[process.id];
      p.alive_ns = process.last_alive_ns;
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

}  // namespace diskwire
