#include "core/tcp_probe.h"

#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace diskwire {
namespace {

absl::Status CallError(const SysResult& r, absl::string_view what, int fd) {
  return absl::ErrnoToStatus(r.error, absl::StrCat(what, " on fd ", fd));
}

// States in which the peer's FIN has been received. Once the application
// reads the end of file, the FIN no longer shows in rcv_nxt - copied_seq; see
// delivered().
bool FinReceivedState(uint8_t state) {
  switch (state) {
    case kTcpCloseWait:
    case kTcpLastAck:
    case kTcpClosing:
    case kTcpTimeWait:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<TcpSample> TcpProbe::Sample(int fd) const {
  tcp_info info;
  socklen_t len = 0;
  int inq = 0;
  // bytes_received and FIONREAD must describe the same moment, or delivered()
  // is off by whatever arrived between the two calls (a 64 KiB segment on
  // loopback). With nobody reading, FIONREAD only grows as bytes arrive: equal
  // before and after TCP_INFO means nothing arrived in between.
  for (int attempt = 0;; ++attempt) {
    int before = 0;
    SysResult r = os_->Ioctl(fd, FIONREAD, &before);
    if (!r.ok()) return CallError(r, "ioctl(FIONREAD)", fd);
    std::memset(&info, 0, sizeof(info));
    len = sizeof(info);
    r = os_->GetSockOpt(fd, IPPROTO_TCP, TCP_INFO, &info, &len);
    if (!r.ok()) return CallError(r, "getsockopt(TCP_INFO)", fd);
    r = os_->Ioctl(fd, FIONREAD, &inq);
    if (!r.ok()) return CallError(r, "ioctl(FIONREAD)", fd);
    if (inq == before || attempt >= 100) break;
  }
  constexpr size_t kNeeded = offsetof(tcp_info, tcpi_bytes_received) +
                             sizeof(info.tcpi_bytes_received);
  if (len < kNeeded) {
    return absl::FailedPreconditionError(absl::StrCat(
        "getsockopt(TCP_INFO) on fd ", fd, " returned ", len,
        " bytes; diskwire needs tcpi_bytes_acked and tcpi_bytes_received (",
        kNeeded, " bytes, Linux >= 4.1)"));
  }
  TcpSample s;
  s.state = info.tcpi_state;
  s.bytes_acked = info.tcpi_bytes_acked;
  s.bytes_received = info.tcpi_bytes_received;
  s.notsent_bytes = len >= offsetof(tcp_info, tcpi_notsent_bytes) +
                                sizeof(info.tcpi_notsent_bytes)
                        ? info.tcpi_notsent_bytes
                        : 0;
  s.unacked_segments = info.tcpi_unacked;
  s.last_ack_recv_ms = info.tcpi_last_ack_recv;
  s.last_data_recv_ms = info.tcpi_last_data_recv;
  s.retransmits = info.tcpi_retransmits;
  // Linux >= 4.2 (tcpi_segs_in); older kernels say answered.
  if (len >= offsetof(tcp_info, tcpi_segs_in) + sizeof(info.tcpi_segs_in)) {
    s.handshake_answered = info.tcpi_rtt != 0 || info.tcpi_segs_in > 1;
  }
  s.probes = info.tcpi_probes;
  // Linux >= 6.2.
  s.window_known =
      len >= offsetof(tcp_info, tcpi_snd_wnd) + sizeof(info.tcpi_snd_wnd);
  s.peer_window = s.window_known ? info.tcpi_snd_wnd : 0;

  int q = 0;
  SysResult r = os_->Ioctl(fd, SIOCOUTQ, &q);
  if (!r.ok()) return CallError(r, "ioctl(SIOCOUTQ)", fd);
  s.outq = static_cast<uint32_t>(std::max(q, 0));
  s.inq = static_cast<uint32_t>(std::max(inq, 0));
  s.fin_received = FinReceivedState(s.state) &&
                   s.bytes_received > s.inq;  // FIN not yet consumed.
  if (s.state == kTcpClose) {
    // SO_ERROR would clear the error; poll() reports it and leaves it.
    pollfd p{fd, 0, 0};
    r = os_->Poll(&p, 1, 0);
    if (!r.ok()) return CallError(r, "poll", fd);
    s.error_pending = (p.revents & POLLERR) != 0;
  }
  return s;
}

absl::StatusOr<uint64_t> TcpProbe::AckedOffset(int fd, uint64_t written,
                                               bool fin_sent) const {
  int q = 0;
  SysResult r = os_->Ioctl(fd, SIOCOUTQ, &q);
  if (!r.ok()) return CallError(r, "ioctl(SIOCOUTQ)", fd);
  TcpSample s;
  s.outq = static_cast<uint32_t>(std::max(q, 0));
  return s.AckedOffset(written, fin_sent);
}

absl::StatusOr<int> TcpProbe::PendingError(int fd) const {
  int err = 0;
  socklen_t len = sizeof(err);
  SysResult r = os_->GetSockOpt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (!r.ok()) return CallError(r, "getsockopt(SO_ERROR)", fd);
  return err;
}

bool TcpProbe::SendBufferNeedsLimit(uint64_t tcp_wmem_max,
                                    size_t ring_capacity) {
  return tcp_wmem_max > ring_capacity;
}

std::optional<uint64_t> TcpProbe::ReadTcpWmemMax() {
  FILE* f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
  if (f == nullptr) return std::nullopt;
  unsigned long long min = 0, dflt = 0, max = 0;
  const int got = fscanf(f, "%llu %llu %llu", &min, &dflt, &max);
  fclose(f);
  if (got != 3) return std::nullopt;
  return static_cast<uint64_t>(max);
}

absl::Status TcpProbe::LimitSendBuffer(int fd, size_t ring_capacity) const {
  const size_t quarter = ring_capacity / 4;
  if (quarter == 0 || quarter > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot derive SO_SNDBUF from a replay ring of ",
                     ring_capacity, " bytes"));
  }
  const int value = static_cast<int>(quarter);
  SysResult r =
      os_->SetSockOpt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
  if (!r.ok()) {
    return CallError(r, absl::StrCat("setsockopt(SO_SNDBUF=", value, ")"), fd);
  }
  return absl::OkStatus();
}

TcpProbe::KeepaliveSettings TcpProbe::SettingsFor(int64_t detect_ms) {
  KeepaliveSettings k;
  const int64_t total_s = std::max<int64_t>(2, (detect_ms + 999) / 1000);
  k.idle_s = static_cast<int>(std::max<int64_t>(1, total_s / 2));
  k.count = static_cast<int>(std::clamp<int64_t>(total_s - k.idle_s, 1, 3));
  k.interval_s =
      static_cast<int>(std::max<int64_t>(1, (total_s - k.idle_s) / k.count));
  return k;
}

namespace {

// The options a selected socket is tuned with, in TcpProbe::Timeouts order.
struct TunedOption {
  int level, name;
  const char* label;
};
constexpr TunedOption kTunedOptions[5] = {
    {SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"},
    {IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"},
    {IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"},
    {IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT"},
};

}  // namespace

absl::StatusOr<TcpProbe::Timeouts> TcpProbe::ReadTimeouts(int fd) const {
  Timeouts t;
  for (int i = 0; i < 5; ++i) {
    const TunedOption& o = kTunedOptions[i];
    socklen_t len = sizeof(t.values[i]);
    SysResult r = os_->GetSockOpt(fd, o.level, o.name, &t.values[i], &len);
    if (!r.ok()) {
      return CallError(r, absl::StrCat("getsockopt(", o.label, ")"), fd);
    }
  }
  return t;
}

absl::Status TcpProbe::RestoreTimeouts(int fd, const Timeouts& saved) const {
  for (int i = 0; i < 5; ++i) {
    const TunedOption& o = kTunedOptions[i];
    SysResult r = os_->SetSockOpt(fd, o.level, o.name, &saved.values[i],
                                  sizeof(saved.values[i]));
    if (!r.ok()) {
      return CallError(
          r, absl::StrCat("setsockopt(", o.label, "=", saved.values[i], ")"),
          fd);
    }
  }
  return absl::OkStatus();
}

absl::Status TcpProbe::ConfigureSelectedSocket(int fd,
                                               int64_t detect_ms) const {
  if (detect_ms <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "detection bound must be positive, got ", detect_ms, " ms"));
  }
  const KeepaliveSettings k = SettingsFor(detect_ms);
  // Not TCP_USER_TIMEOUT: the kernel applies it to zero-window probing too,
  // and would abort a connection whose reader merely stopped reading for that
  // long (the engine's detector judges data in flight itself).
  const int values[4] = {1, k.idle_s, k.interval_s, k.count};
  for (int i = 0; i < 4; ++i) {
    const TunedOption& o = kTunedOptions[i];
    SysResult r =
        os_->SetSockOpt(fd, o.level, o.name, &values[i], sizeof(values[i]));
    if (!r.ok()) {
      return CallError(
          r, absl::StrCat("setsockopt(", o.label, "=", values[i], ")"), fd);
    }
  }
  return absl::OkStatus();
}

absl::Status TcpProbe::BoundConnect(int fd, int64_t detect_ms) const {
  const int ms = static_cast<int>(
      std::min<int64_t>(detect_ms * kConnectTimeoutFactor, INT32_MAX));
  SysResult r =
      os_->SetSockOpt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
  if (!r.ok()) {
    return CallError(r, absl::StrCat("setsockopt(TCP_USER_TIMEOUT=", ms, ")"),
                     fd);
  }
  return absl::OkStatus();
}

absl::Status TcpProbe::EndConnectBound(int fd, int app_value) const {
  SysResult r = os_->SetSockOpt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &app_value,
                                sizeof(app_value));
  if (!r.ok()) {
    return CallError(
        r, absl::StrCat("setsockopt(TCP_USER_TIMEOUT=", app_value, ")"), fd);
  }
  return absl::OkStatus();
}

}  // namespace diskwire
