// Resume, the network side: the listener, dialing the peer, accepting links
// and reading their hello, and moving whole handshake messages on a link. The
// steps of the handshake itself are in core/resume.cc.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"

namespace diskwire {
namespace {

constexpr int kListenBacklog = 64;

void SetPort(sockaddr_storage* addr, uint16_t port) {
  if (addr->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

socklen_t AddrLen(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

}  // namespace

size_t EngineImpl::SendAllNoSignal(int fd, absl::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    iovec iov{const_cast<char*>(bytes.data() + off), bytes.size() - off};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = os_->SendMsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (!r.ok()) break;
    off += r.value;
  }
  return off;
}

int EngineImpl::ListenOn(int family, uint16_t port, std::string* error) {
  SysResult fd =
      os_->Socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!fd.ok()) {
    *error = absl::StrCat("socket: ", strerror(fd.error));
    return -1;
  }
  const int one = 1;
  os_->SetSockOpt(fd.value, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  addr.ss_family = static_cast<sa_family_t>(family);
  if (family == AF_INET6) {
    // IPv4 peers have their own listener, so that a resumed socket is of the
    // family the application's was.
    os_->SetSockOpt(fd.value, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr = in6addr_any;
  }
  SetPort(&addr, port);
  SysResult bound =
      os_->Bind(fd.value, reinterpret_cast<sockaddr*>(&addr), AddrLen(addr));
  if (bound.ok()) bound = os_->Listen(fd.value, kListenBacklog);
  if (!bound.ok()) {
    *error = absl::StrCat("port ", port, ": ", strerror(bound.error));
    os_->Close(fd.value);
    return -1;
  }
  private_[fd.value].store(1, std::memory_order_release);
  return static_cast<int>(fd.value);
}

void EngineImpl::StartResumeListener() {
  if (!config_.resume || config_.mode == Mode::kStorage) return;
  if (!resume_listeners_.empty()) return;
  std::string error = "no port in DISKWIRE_RESUME_PORT";
  for (uint32_t port = config_.resume_port_lo; port <= config_.resume_port_hi;
       ++port) {
    const int v4 = ListenOn(AF_INET, static_cast<uint16_t>(port), &error);
    if (v4 < 0) continue;
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    os_->GetSockName(v4, reinterpret_cast<sockaddr*>(&addr), &len);
    resume_port_ = ntohs(addr.sin_port);
    resume_listeners_.push_back(v4);
    std::string v6_error;
    const int v6 = ListenOn(AF_INET6, resume_port_, &v6_error);
    if (v6 >= 0) {
      resume_listeners_.push_back(v6);
    } else {
      log_.Debug("no IPv6 resume listener: ", v6_error);
    }
    log_.Debug("resume listener on port ", resume_port_);
    return;
  }
  log_.Warn("cannot listen for resume connections (", error,
            "): sessions that fail over stay on the volume "
            "(DISKWIRE_RESUME_PORT)");
}

std::optional<EngineImpl::PeerInfo> EngineImpl::PeerInfoFor(
    const std::string& process) {
  // What the last check of the peers read, else the heartbeats read now (a
  // peer that came after it).
  std::shared_ptr<const PeerSnapshot> peers = peers_->Latest();
  for (int attempt = 0; attempt < 2; ++attempt) {
    const PeerProcess* p = peers != nullptr ? peers->Find(process) : nullptr;
    if (p != nullptr && p->report.has_value() && p->report->resume_port != 0 &&
        p->report->resume_nonce.size() == kResumeNonceBytes) {
      return PeerInfo{p->report->resume_port, p->report->resume_nonce};
    }
    if (attempt == 0) {
      auto refreshed = peers_->Refresh();
      if (!refreshed.ok()) return std::nullopt;
      peers = *refreshed;
    }
  }
  return std::nullopt;
}

void EngineImpl::DialResumes() {
  if (resume_listeners_.empty()) return;
  std::vector<std::shared_ptr<Session>> candidates;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->role == Role::kClient &&
          s->state.load() == SessionState::kStorage && s->link == nullptr)
        candidates.push_back(s);
    });
  }
  const int64_t now = clock_->NowNs();
  for (auto& shared : candidates) {
    Session* s = shared.get();
    if (now < s->next_resume_ns || !CanResume(s)) continue;
    s->next_resume_ns = now + kRetryMs * 1'000'000;
    std::optional<PeerInfo> peer = PeerInfoFor(s->peer_process);
    if (!peer.has_value()) continue;
    sockaddr_storage to = s->endpoints.remote;
    SetPort(&to, peer->resume_port);
    SysResult fd = os_->Socket(to.ss_family,
                               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!fd.ok()) continue;
    const int one = 1;
    os_->SetSockOpt(fd.value, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SysResult c =
        os_->Connect(fd.value, reinterpret_cast<sockaddr*>(&to), AddrLen(to));
    if (!c.ok() && c.error != EINPROGRESS) {
      // No route yet: the network is still down.
      os_->Close(fd.value);
      continue;
    }
    s->link = std::make_unique<ResumeLink>();
    s->link->fd = static_cast<int>(fd.value);
    s->link->phase = ResumeLink::Phase::kConnecting;
    s->link->episode = s->episode;
    s->link->deadline_ns = now + kAttemptMs * 1'000'000;
    private_[s->link->fd].store(1, std::memory_order_release);
    LoopAdd(s->link->fd, s, EPOLLOUT | EPOLLIN);
  }
}

void EngineImpl::AcceptResumeLinks(int listener) {
  while (true) {
    SysResult fd =
        os_->Accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (!fd.ok()) return;  // EAGAIN, or a connection that went away
    auto pending = std::make_unique<PendingResumeLink>();
    pending->fd = static_cast<int>(fd.value);
    pending->deadline_ns = clock_->NowNs() + kAttemptMs * 1'000'000;
    auto tag = std::make_unique<Session::LoopTag>(
        Session::LoopTag{nullptr, Session::LoopTag::kPendingLink});
    tag->pending = pending.get();
    private_[pending->fd].store(1, std::memory_order_release);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = tag.get();
    os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, pending->fd, &ev);
    pending_links_.push_back({std::move(pending), std::move(tag)});
  }
}

void EngineImpl::ForgetPendingLink(PendingResumeLink* p) {
  pending_links_.erase(
      std::remove_if(pending_links_.begin(), pending_links_.end(),
                     [&](const auto& e) { return e.first.get() == p; }),
      pending_links_.end());
}

void EngineImpl::ReadPendingLink(Session::LoopTag* tag) {
  PendingResumeLink* p = tag->pending;
  auto drop = [&](const std::string& why) {
    if (!why.empty()) log_.Warn("resume connection refused: ", why);
    LoopDel(p->fd);
    const linger abortive{1, 0};
    os_->SetSockOpt(p->fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
    private_[p->fd].store(0);
    os_->Close(p->fd);
    ForgetPendingLink(p);
  };
  while (true) {
    size_t want = kResumePrefixBytes;
    if (p->in.size() >= kResumePrefixBytes) {
      want = ResumeMessageSize(p->in);
      if (want == 0) return drop("not a diskwire engine");
    }
    if (p->in.size() == want) break;
    char buf[128];
    SysResult r = os_->Read(p->fd, buf, want - p->in.size());
    if (r.ok() && r.value > 0) {
      p->in.append(buf, r.value);
      continue;
    }
    if (!r.ok() && (r.error == EAGAIN || r.error == EINTR)) return;
    return drop("");  // gone before its hello: nothing to say
  }
  auto hello = DecodeResume(p->in);
  if (!hello.ok() || hello->kind != ResumeKind::kHello) {
    return drop(hello.ok() ? "the first message is not a hello"
                           : std::string(hello.status().message()));
  }
  std::shared_ptr<Session> shared;
  {
    absl::MutexLock lock(&table_.mu);
    shared = table_.Find(KeyOf(hello->session, Role::kServer));
  }
  Session* s = shared.get();
  if (s != nullptr && s->link != nullptr && !s->link->frozen) {
    // The client gave up an earlier attempt this side still waits on.
    AbandonResume(s, "", false);
  }
  if (s == nullptr || !CanResume(s) || hello->episode != s->episode) {
    // A session that ended, or one this side is not ready to resume yet: the
    // client tries again. Quietly: this is the normal race at a heal.
    return drop("");
  }
  std::optional<PeerInfo> peer = PeerInfoFor(s->peer_process);
  if (!peer.has_value()) return drop("");
  ResumeSecret secret = ResumeSecret::Derive(config_.key, peer->nonce,
                                             resume_nonce_, s->id, s->episode);
  if (!VerifyResume(*hello, secret, "")) {
    return drop(
        absl::StrCat("session ", s->label, ": the hello is not authentic"));
  }
  auto link = std::make_unique<ResumeLink>();
  link->fd = p->fd;
  link->phase = ResumeLink::Phase::kAwaitReady;
  link->handshake_in = p->in.size();
  link->client_challenge = hello->challenge;
  link->peer_kept_from = hello->kept_from;
  link->server_challenge = RandomBytes(kResumeChallengeBytes);
  link->secret = secret;
  link->episode = s->episode;
  link->deadline_ns = clock_->NowNs() + kAttemptMs * 1'000'000;
  // The fd is the session's now: its loop events go to the session's tag.
  p->fd = -1;
  ForgetPendingLink(p);
  s->link = std::move(link);
  LoopMod(s->link->fd, s, EPOLLIN);
  ResumeMessage welcome;
  welcome.kind = ResumeKind::kWelcome;
  welcome.challenge = s->link->server_challenge;
  {
    FutexLockHolder send_lock(&s->send_mu);
    welcome.kept_from = s->ring.tail();
  }
  if (!SendLinkMessage(s, welcome)) {
    AbandonResume(s, "cannot send the welcome", false);
  }
}

bool EngineImpl::SendLinkMessage(Session* s, const ResumeMessage& m) {
  ResumeLink* link = s->link.get();
  const std::string transcript = m.kind == ResumeKind::kHello ? ""
                                 : m.kind == ResumeKind::kWelcome
                                     ? link->client_challenge
                                     : link->transcript();
  const std::string bytes = EncodeResume(m, link->secret, transcript);
  // A few dozen bytes on a connection that has sent next to nothing: the
  // socket buffer always takes them whole.
  return SendAllNoSignal(link->fd, bytes) == bytes.size();
}

bool EngineImpl::ReadLinkMessage(Session* s, bool* failed) {
  ResumeLink* link = s->link.get();
  *failed = false;
  while (true) {
    size_t want = kResumePrefixBytes;
    if (link->in.size() >= kResumePrefixBytes) {
      want = ResumeMessageSize(link->in);
      if (want == 0) {
        *failed = true;
        return false;
      }
    }
    if (link->in.size() == want) return true;
    // Exactly the message: what follows it is stream bytes for the
    // application, which reads them from this socket once it is its own.
    char buf[128];
    SysResult r = os_->Read(link->fd, buf, want - link->in.size());
    if (r.ok() && r.value > 0) {
      link->in.append(buf, r.value);
      link->handshake_in += r.value;
      continue;
    }
    if (!r.ok() && (r.error == EAGAIN || r.error == EINTR)) return false;
    *failed = true;  // end of file or an error: the link is gone
    return false;
  }
}

void EngineImpl::ExpireResumes() {
  const int64_t now = clock_->NowNs();
  for (size_t i = 0; i < pending_links_.size();) {
    PendingResumeLink* p = pending_links_[i].first.get();
    if (now <= p->deadline_ns) {
      ++i;
      continue;
    }
    LoopDel(p->fd);  // no whole hello in time
    private_[p->fd].store(0);
    os_->Close(p->fd);
    pending_links_.erase(pending_links_.begin() + i);
  }
  std::vector<std::shared_ptr<Session>> linked;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->link != nullptr) linked.push_back(s);
    });
  }
  for (auto& s : linked) {
    if (s->link == nullptr || now <= s->link->deadline_ns) continue;
    const bool uncertain = s->role == Role::kServer &&
                           s->link->phase == ResumeLink::Phase::kAwaitCommit;
    AbandonResume(s.get(),
                  s->link->phase == ResumeLink::Phase::kConnecting
                      ? ""
                      : "the handshake timed out",
                  uncertain);
  }
}

}  // namespace diskwire
