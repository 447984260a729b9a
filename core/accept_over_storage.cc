// Opening a connection over the volume, the listener's side
// (docs/ARCHITECTURE.md, "Opening over storage"): the process that advertises
// the listener gets a peer's request in its inbox, dials its own listener
// through the loopback and writes the request down that connection, so that
// the connection waits in the listener's real accept queue. Whichever process
// accept()s it recognises the dial, reads the request and carries the
// session in STORAGE from offset 0. The client's side is
// core/open_over_storage.cc.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"

namespace diskwire {
namespace {

// The first line the listener's process writes on its loopback connection.
constexpr absl::string_view kOpenPreamble = "diskwire-open 1 ";
constexpr size_t kMaxPreamble = 4096;
// How long an accept() waits for the request line of a connection that came
// from the loopback to a non-loopback address (written right after connect).
constexpr int kPreambleWaitMs = 1000;
// How long the listener's process waits for its loopback connect().
constexpr int kDialWaitMs = 500;
// The listener's process dials its own listener from this loopback address
// (IPv4; ::1 for IPv6), which no ordinary client uses, so that accept() tells
// our dials from the application's clients without reading a byte of theirs.
constexpr uint32_t kDialSourceV4 = 0x7fde4901;  // 127.222.73.1

bool IsLoopback(const sockaddr_storage& addr) {
  MappedAddress m;
  if (!ToMapped(addr, &m)) return false;
  static constexpr std::array<uint8_t, 16> kLoop6 = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0, 0, 0, 0, 0, 1};
  return m.bytes == kLoop6 || (m.IsV4() && m.bytes[12] == 127);
}

bool IsDialSource(const sockaddr_storage& addr) {
  MappedAddress m;
  if (!ToMapped(addr, &m)) return false;
  if (!m.IsV4()) return IsLoopback(addr);
  uint32_t v4;
  std::memcpy(&v4, m.bytes.data() + 12, 4);
  return ntohl(v4) == kDialSourceV4;
}

// `addr` in its plain family: an IPv4-mapped IPv6 address as AF_INET.
sockaddr_storage Unmapped(const sockaddr_storage& addr) {
  MappedAddress m;
  if (addr.ss_family != AF_INET6 || !ToMapped(addr, &m) || !m.IsV4())
    return addr;
  sockaddr_storage out = {};
  auto* in = reinterpret_cast<sockaddr_in*>(&out);
  in->sin_family = AF_INET;
  std::memcpy(&in->sin_addr, m.bytes.data() + 12, 4);
  in->sin_port = htons(m.port);
  return out;
}

}  // namespace

void EngineImpl::PostOpenAnswer(const FailoverMessage& request,
                                const char* answer) {
  FailoverMessage m;
  m.session = request.session;
  m.sender_role = Role::kServer;
  m.from_process = process_id_;
  m.episode = 1;
  m.answer = answer;
  absl::Status posted = send_volume_->PostToInbox(
      request.from_process,
      absl::StrCat("oa-", SessionIdHex(m.session), "-", clock_->RealtimeNs()),
      EncodeFailover(m));
  if (!posted.ok()) {
    log_.Warn("cannot answer ", request.from_process, "'s connect to ",
              request.open_to, ": ", posted.message());
  }
}

void EngineImpl::HandleOpenRequest(const FailoverMessage& m) {
  for (const OpenDial& d : open_dials_) {
    if (d.request.session == m.session) return;  // already under way
  }
  auto dest = ParseAddress(m.open_to);
  if (!dest.ok() || !ParseAddress(m.open_from).ok()) {
    log_.Warn("connect request from ", m.from_process,
              ": bad address: ", dest.status().message());
    return;
  }
  std::optional<ListenAddress> listener =
      listeners_.Find(*dest, ParseHostAddresses(host_.addresses));
  if (!listener.has_value()) {
    log_.Info(m.from_process, " connects to ", m.open_to,
              " over the volume: nothing listens there here; refused");
    PostOpenAnswer(m, "refused");
    return;
  }
  // The listener's own queue holds the connection: dial it from the loopback
  // (which only a connection of ours has, towards a non-loopback address).
  const sockaddr_storage target = Unmapped(*dest);
  sockaddr_storage source = {};
  source.ss_family = target.ss_family;
  if (target.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&source)->sin_addr.s_addr =
        htonl(kDialSourceV4);
  } else {
    reinterpret_cast<sockaddr_in6*>(&source)->sin6_addr = in6addr_loopback;
  }
  int error = 0;
  SysResult sock = os_->Socket(target.ss_family,
                               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int fd = sock.ok() ? static_cast<int>(sock.value) : -1;
  if (fd < 0) {
    error = sock.error;
  } else if (SysResult b =
                 os_->Bind(fd, reinterpret_cast<const sockaddr*>(&source),
                           AddressLength(source));
             !b.ok()) {
    error = b.error;
  } else if (SysResult c =
                 os_->Connect(fd, reinterpret_cast<const sockaddr*>(&target),
                              AddressLength(target));
             !c.ok() && c.error != EINPROGRESS) {
    error = c.error;
  } else if (!c.ok()) {
    pollfd p{fd, POLLOUT, 0};
    SysResult polled = os_->Poll(&p, 1, kDialWaitMs);
    socklen_t len = sizeof(error);
    if (!polled.ok() || polled.value == 0) {
      error = ETIMEDOUT;  // the listener's queue is full
    } else {
      os_->GetSockOpt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    }
  }
  const std::string line = absl::StrCat(kOpenPreamble, EncodeFailover(m), "\n");
  if (error == 0 && SendAllNoSignal(fd, line) != line.size()) error = EPIPE;
  if (error != 0) {
    if (fd >= 0) os_->Close(fd);
    log_.Info(m.from_process, " connects to ", m.open_to,
              " over the volume: the listener takes no connection (",
              strerror(error), "); refused");
    PostOpenAnswer(m, "refused");
    return;
  }
  private_[fd].store(1, std::memory_order_release);
  open_dials_.push_back({fd, m});
  log_.Info(m.from_process, " connects to ", m.open_to,
            " over the volume: queued on the listener ",
            FormatListenAddress(*listener));
  PostOpenAnswer(m, "accepted");
}

void EngineImpl::CheckOpenDials() {
  std::vector<OpenDial> keep;
  for (OpenDial& d : open_dials_) {
    char c = 0;
    SysResult r = os_->Read(d.fd, &c, 1);
    if (!r.ok() && r.error == EAGAIN) {
      keep.push_back(std::move(d));
      continue;
    }
    private_[d.fd].store(0, std::memory_order_release);
    os_->Close(d.fd);
    if (r.ok() && r.value == 1 && c == 'A') continue;  // accepted
    // The listener closed with the connection still in its queue: TCP resets
    // it, and so does the volume.
    AnswerUnknownSession(d.request);
  }
  open_dials_.swap(keep);
}

bool EngineImpl::AcceptOverStorage(int fd) {
  sockaddr_storage local = {}, peer = {};
  socklen_t len = sizeof(local);
  if (!os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&local), &len).ok())
    return false;
  len = sizeof(peer);
  if (!os_->GetPeerName(fd, reinterpret_cast<sockaddr*>(&peer), &len).ok())
    return false;
  MappedAddress local_m;
  if (!ToMapped(local, &local_m) || !config_.select.MayAcceptOn(local_m.port) ||
      !IsDialSource(peer) || IsLoopback(local)) {
    return false;
  }
  // The request line, written right after the loopback connect. It is read
  // by peeking until it is whole, so that nothing is consumed from a
  // connection that turns out to be an ordinary client's.
  std::string line;
  const int64_t deadline = clock_->NowNs() + kPreambleWaitMs * 1'000'000LL;
  while (true) {
    char buf[kMaxPreamble];
    iovec iov{buf, sizeof(buf)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    SysResult r = os_->RecvMsg(fd, &msg, MSG_PEEK | MSG_DONTWAIT);
    if (r.ok() && r.value == 0) return false;
    if (!r.ok() && r.error != EAGAIN && r.error != EWOULDBLOCK) return false;
    const absl::string_view seen(buf,
                                 r.ok() ? static_cast<size_t>(r.value) : 0);
    const size_t want = std::min(seen.size(), kOpenPreamble.size());
    if (seen.substr(0, want) != kOpenPreamble.substr(0, want))
      return false;  // a local client of the application's
    const size_t nl = seen.find('\n');
    if (nl != absl::string_view::npos) {
      line.assign(nl + 1, '\0');
      iovec ci{line.data(), line.size()};
      msghdr cm{};
      cm.msg_iov = &ci;
      cm.msg_iovlen = 1;
      SysResult got = os_->RecvMsg(fd, &cm, MSG_DONTWAIT);
      if (!got.ok() || static_cast<size_t>(got.value) != line.size())
        return false;
      break;
    }
    const int64_t left = deadline - clock_->NowNs();
    if (seen.size() == sizeof(buf) || left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    os_->Poll(&p, 1, static_cast<int>(std::max<int64_t>(left / 1'000'000, 1)));
  }
  auto m = DecodeFailover(absl::string_view(line).substr(
      kOpenPreamble.size(), line.size() - kOpenPreamble.size() - 1));
  auto client = m.ok() ? ParseAddress(m->open_from)
                       : absl::StatusOr<sockaddr_storage>(m.status());
  auto server = m.ok() ? ParseAddress(m->open_to)
                       : absl::StatusOr<sockaddr_storage>(m.status());
  if (!client.ok() || !server.ok()) {
    log_.Warn("accepted a connection with a bad request line: ",
              client.status().message());
    return false;
  }
  auto made = NewOpenedSession(Role::kServer, *server, *client, m->from_process,
                               m->claim);
  if (!made.ok() || !((*made)->id == m->session)) {
    log_.Warn("accepted a connection whose request names session ",
              SessionIdHex(m->session), " for other endpoints");
    return false;
  }
  std::shared_ptr<Session> s = *std::move(made);
  RegisterOpened(s, fd);
  SysResult kept = os_->Fcntl(fd, F_DUPFD_CLOEXEC, 0);
  absl::Status started =
      kept.ok() ? absl::OkStatus() : absl::ErrnoToStatus(kept.error, "dup");
  {
    FutexLockHolder send_lock(&s->send_mu);
    absl::MutexLock recv_lock(&s->recv_mu);
    if (started.ok()) started = InstallSocketPair(s.get(), {fd});
    if (started.ok()) {
      s->generation.fetch_add(1);
      s->on_tcp = false;
    }
  }
  if (kept.ok()) {
    // Tells the dialing process that the application took the connection.
    SendAllNoSignal(static_cast<int>(kept.value), "A");
    os_->Close(static_cast<int>(kept.value));
  }
  if (started.ok()) started = StartStoragePath(s.get(), 0, 0);
  {
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kStorage);
    s->state_changed.SignalAll();
  }
  if (!started.ok()) {
    EndSession(
        s.get(), ECONNRESET,
        absl::StrCat("cannot carry it over the volume: ", started.message()));
    return true;
  }
  Announce(s.get());
  log_.Info("accepted ", s->label, " session ", SessionIdHex(s->id),
            " over the volume (opened while the network was down)");
  {
    absl::MutexLock lock(&table_.mu);
    to_register_.push_back(s);
  }
  uint64_t one = 1;
  os_->Write(kick_fd_, &one, sizeof(one));
  return true;
}

}  // namespace diskwire
