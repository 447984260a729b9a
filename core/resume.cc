// Resume: a session carried over the volume goes back to the network on a
// fresh TCP connection between the two engines, the "link", once the network
// works again. The steps and why a cut at any of them loses nothing are in
// docs/ARCHITECTURE.md ("Resume"); the messages in core/resume_handshake.h.
//
//   client                                   server
//   connect to the peer's resume port ─────► accept
//   HELLO(session, episode, challenge) ────► verify, or close
//                           ◄────────────── WELCOME(challenge)
//   freeze, take back → D_c
//   READY(D_c) ────────────────────────────► freeze, take back → D_s
//                           ◄────────────── READY(D_s)
//   COMMIT, swap, resend from D_s ─────────► swap, resend from D_c
//
// Everything here runs on the engine loop.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"

namespace diskwire {

bool EngineImpl::CanResume(Session* s) {
  if (!config_.resume || config_.mode == Mode::kStorage) return false;
  if (s->state.load() != SessionState::kStorage || s->link != nullptr)
    return false;
  // The old socket has given all it had and the application still holds the
  // connection. (That the peer is in this episode too is the hello's to
  // prove: its FAILOVER record may lie below where our reader started.)
  if (s->leg.old_sock_open || s->leg.eng_end < 0 || s->leg.app_end < 0 ||
      s->peer_process.empty()) {
    return false;
  }
  absl::MutexLock lock(&s->mu);
  return s->error == 0 && !s->names.empty();
}

void EngineImpl::OnLinkEvent(Session* s) {
  ResumeLink* link = s->link.get();
  if (link == nullptr || link->stalled) return;
  const bool client = s->role == Role::kClient;
  if (link_fault_ && link_fault_(s->role, link->phase)) {
    link->stalled = true;
    LoopDel(link->fd);
    return;
  }
  if (link->phase == ResumeLink::Phase::kConnecting) {
    auto error = probe_.PendingError(link->fd);
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    if (!error.ok() || *error != 0 ||
        !os_->GetPeerName(link->fd, reinterpret_cast<sockaddr*>(&peer), &len)
             .ok()) {
      return AbandonResume(s, "", false);  // the network is still down
    }
    std::optional<PeerInfo> info = PeerInfoFor(s->peer_process);
    if (!info.has_value()) return AbandonResume(s, "", false);
    link->client_challenge = RandomBytes(kResumeChallengeBytes);
    link->secret = ResumeSecret::Derive(config_.key, resume_nonce_, info->nonce,
                                        s->id, s->episode);
    ResumeMessage hello;
    hello.kind = ResumeKind::kHello;
    hello.session = s->id;
    hello.episode = s->episode;
    hello.challenge = link->client_challenge;
    {
      FutexLockHolder send_lock(&s->send_mu);
      hello.kept_from = s->ring.tail();
    }
    if (!SendLinkMessage(s, hello)) return AbandonResume(s, "", false);
    link->phase = ResumeLink::Phase::kAwaitWelcome;
    LoopMod(link->fd, s, EPOLLIN);
    return;
  }
  bool failed = false;
  while (s->link != nullptr && ReadLinkMessage(s, &failed)) {
    link = s->link.get();
    auto m = DecodeResume(link->in);
    link->in.clear();
    if (!m.ok())
      return AbandonResume(
          s, std::string(m.status().message()),
          !client && link->phase == ResumeLink::Phase::kAwaitCommit);
    if (m->kind == ResumeKind::kWelcome && client &&
        link->phase == ResumeLink::Phase::kAwaitWelcome) {
      if (!VerifyResume(*m, link->secret, link->client_challenge)) {
        return AbandonResume(s, "the welcome is not authentic", false);
      }
      link->server_challenge = m->challenge;
      link->peer_kept_from = m->kept_from;
      if (!Freeze(s)) {
        ResumeMessage abort;
        abort.kind = ResumeKind::kAbort;
        SendLinkMessage(s, abort);
        return AbandonResume(s, "", false);
      }
      ResumeMessage ready;
      ready.kind = ResumeKind::kReady;
      ready.delivered = link->self_delivered;
      if (!SendLinkMessage(s, ready)) return AbandonResume(s, "", false);
      link->phase = ResumeLink::Phase::kAwaitReady;
      continue;
    }
    if (!VerifyResume(*m, link->secret, link->transcript())) {
      return AbandonResume(
          s, "a resume message is not authentic",
          !client && link->phase == ResumeLink::Phase::kAwaitCommit);
    }
    if (m->kind == ResumeKind::kReady &&
        link->phase == ResumeLink::Phase::kAwaitReady) {
      if (client) return CommitResume(s, m->delivered);
      // Server: the client is frozen and told where it stands.
      if (!Freeze(s)) return AbandonResume(s, "", false);
      link->peer_delivered = m->delivered;
      ResumeMessage ready;
      ready.kind = ResumeKind::kReady;
      ready.delivered = link->self_delivered;
      if (!SendLinkMessage(s, ready)) return AbandonResume(s, "", true);
      link->phase = ResumeLink::Phase::kAwaitCommit;
      continue;
    }
    if (!client && link->phase == ResumeLink::Phase::kAwaitCommit) {
      if (m->kind == ResumeKind::kCommit) {
        return CommitResume(s, link->peer_delivered);
      }
      if (m->kind == ResumeKind::kAbort) {
        return AbandonResume(s, "", false);
      }
    }
    if (m->kind == ResumeKind::kAbort) return AbandonResume(s, "", false);
    return AbandonResume(
        s, "an unexpected resume message",
        !client && link->phase == ResumeLink::Phase::kAwaitCommit);
  }
  if (failed && s->link != nullptr) {
    AbandonResume(s, "",
                  !client && s->link->phase == ResumeLink::Phase::kAwaitCommit);
  }
}

bool EngineImpl::Freeze(Session* s) {
  ResumeLink* link = s->link.get();
  {
    absl::MutexLock lock(&s->mu);
    if (s->state.load() != SessionState::kStorage || s->error != 0 ||
        s->names.empty())
      return false;
    s->state.store(SessionState::kResuming);
  }
  // Every hook on the pair runs under one of these locks and never blocks in
  // it: holding both, no application thread is inside the pair, and new calls
  // wait while RESUMING.
  FutexLockHolder send_lock(&s->send_mu);
  absl::MutexLock recv_lock(&s->recv_mu);
  int unread = 0;
  os_->Ioctl(s->leg.app_end, FIONREAD, &unread);
  const uint64_t consumed =
      s->delivered - std::min<uint64_t>(s->delivered, std::max(unread, 0));
  if ((s->leg.eof_delivered && unread > 0) || consumed < link->peer_kept_from) {
    // Not yet: the end of file is in the pair behind those bytes (they cannot
    // be taken back), or the application has still to read bytes the peer no
    // longer keeps (they reached this side through the old socket, and only
    // this side has them). Later, once the application has read them.
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kStorage);
    s->state_changed.SignalAll();
    return false;
  }
  char buf[64 << 10];
  link->taken_back.clear();
  while (true) {
    // The application's end shares the application's blocking mode.
    iovec iov{buf, sizeof(buf)};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = os_->RecvMsg(s->leg.app_end, &m, MSG_DONTWAIT);
    if (!r.ok() || r.value == 0) break;
    link->taken_back.append(buf, r.value);
  }
  link->self_delivered = s->delivered - link->taken_back.size();
  // What the application wrote and the engine has not read yet is the
  // application's stream too: into the ring, beyond its cap if need be (the
  // pair holds a bounded amount).
  while (!s->leg.app_wrote_eof) {
    if (s->ring.Free() == 0) s->ring.Grow(s->ring.capacity() + sizeof(buf));
    SysResult r =
        os_->Read(s->leg.eng_end, buf, std::min(sizeof(buf), s->ring.Free()));
    if (r.ok() && r.value > 0) {
      s->ring.Append(absl::string_view(buf, r.value));
      continue;
    }
    if (r.ok() && r.value == 0) s->leg.app_wrote_eof = true;
    break;
  }
  link->frozen = true;
  return true;
}

void EngineImpl::Unfreeze(Session* s) {
  ResumeLink* link = s->link.get();
  if (link == nullptr || !link->frozen) return;
  {
    FutexLockHolder send_lock(&s->send_mu);
    absl::MutexLock recv_lock(&s->recv_mu);
    // The pair's queue toward the application is empty (it was taken back and
    // nothing was pushed since): the bytes go back in their order.
    const size_t given = SendAllNoSignal(s->leg.eng_end, link->taken_back);
    if (given < link->taken_back.size()) {
      log_.Error("session ", s->label, ": cannot give back ",
                 link->taken_back.size() - given,
                 " bytes to the socket pair (the application closed it?)");
    }
    link->taken_back.clear();
    link->frozen = false;
  }
  absl::MutexLock lock(&s->mu);
  s->state.store(SessionState::kStorage);
  s->state_changed.SignalAll();
}

void EngineImpl::CommitResume(Session* s, uint64_t peer_delivered) {
  ResumeLink* link = s->link.get();
  const bool client = s->role == Role::kClient;
  bool kept;
  {
    FutexLockHolder send_lock(&s->send_mu);
    // Always true with a diskwire peer: the ring keeps what the peer has not
    // consumed.
    kept = peer_delivered >= s->ring.tail() && peer_delivered <= s->ring.head();
    if (!kept) {
      log_.Error("session ", s->label, ": the peer resumes at ", peer_delivered,
                 ", outside the kept bytes [", s->ring.tail(), ", ",
                 s->ring.head(), ")");
    }
  }
  if (!kept) return AbandonResume(s, "offsets disagree", !client);
  if (client) {
    ResumeMessage commit;
    commit.kind = ResumeKind::kCommit;
    if (!SendLinkMessage(s, commit)) return AbandonResume(s, "", false);
  }
  std::vector<int> names;
  std::vector<std::pair<std::pair<int, int>, std::string>> options;
  {
    absl::MutexLock lock(&s->mu);
    names = s->names;
    options = s->sockopts;
  }
  const int link_fd = link->fd;
  LoopDel(link_fd);
  // The link becomes the application's socket: diskwire's settings for a
  // selected socket, then the application's own.
  absl::Status tuned =
      probe_.ConfigureSelectedSocket(link_fd, config_.detect_ms);
  if (tuned.ok() && limit_send_buffer_)
    tuned = probe_.LimitSendBuffer(link_fd, config_.replay_cap);
  if (!tuned.ok()) log_.Warn("session ", s->label, ": ", tuned.message());
  for (const auto& [key, value] : options) {
    os_->SetSockOpt(link_fd, key.first, key.second, value.data(),
                    static_cast<socklen_t>(value.size()));
  }
  {
    FutexLockHolder send_lock(&s->send_mu);
    absl::MutexLock recv_lock(&s->recv_mu);
    if (!names.empty()) {
      const int status_flags =
          static_cast<int>(os_->Fcntl(names[0], F_GETFL, 0).value);
      CopyTimeouts(names[0], link_fd);
      ReplaceFile(s, names, link_fd);
      os_->Fcntl(names[0], F_SETFL, status_flags & (O_NONBLOCK | O_APPEND));
    }
    s->sent_to_socket = peer_delivered;
    s->fin_owed = s->leg.app_wrote_eof;
    s->shut_wr = false;
    s->on_tcp = true;
    s->in_adjust = static_cast<int64_t>(link->self_delivered) -
                   static_cast<int64_t>(link->handshake_in);
    s->delivered = link->self_delivered;
    s->detector.Reset();
    s->generation.fetch_add(1);
    FlushBacklog(s, link_fd);
  }
  private_[link_fd].store(0);
  os_->Close(link_fd);
  const int64_t since_ms = (clock_->NowNs() - s->detected_ns) / 1'000'000;
  s->link.reset();
  ReleaseStorageState(s, /*remove_channel=*/true);
  {
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kDirect);
    s->state_changed.SignalAll();
  }
  s->resumes.fetch_add(1, std::memory_order_relaxed);
  uint64_t one = 1;
  os_->Write(wake_fd_, &one, sizeof(one));  // waits retry on the new file
  log_.Info("session ", s->label, " back on the network (episode ", s->episode,
            ", ", since_ms,
            " ms after the failover; realtime_ns=", clock_->RealtimeNs(), ")");
}

void EngineImpl::ReleaseStorageState(Session* s, bool remove_channel) {
  if (s->leg.eng_end >= 0) {
    if (s->leg.eng_in_loop) LoopDel(s->leg.eng_end);
    private_[s->leg.eng_end].store(0);
    os_->Close(s->leg.eng_end);
    s->leg.eng_end = -1;
  }
  if (s->leg.app_end >= 0) {
    private_[s->leg.app_end].store(0);
    os_->Close(s->leg.app_end);
    s->leg.app_end = -1;
  }
  if (s->leg.old_sock_open) storage_path_.CloseOldSocket(s);
  if (s->leg.out != nullptr) writer_->RemoveChannel(s->leg.out);
  s->leg.out.reset();
  s->leg.channel.reset();  // closed before its channel is removed
  if (remove_channel) {
    absl::Status removed = send_volume_->RemoveChannel(MyChannel(*s));
    if (!removed.ok()) {
      log_.Warn("session ", s->label,
                ": cannot remove its channel: ", removed.message());
    }
  }
  if (watcher_ != nullptr && s->leg.reader != nullptr)
    (void)watcher_->Unwatch(PeerChannel(*s));
  // The next failover starts from a leg no episode has used.
  s->leg = StorageLeg();
  s->abort_consumed = false;
}

void EngineImpl::AbandonResume(Session* s, const std::string& why,
                               bool peer_may_have_committed) {
  ResumeLink* link = s->link.get();
  if (link == nullptr) return;
  if (!why.empty())
    log_.Info("session ", s->label, ": resume abandoned: ", why);
  LoopDel(link->fd);
  if (s->role == Role::kClient && link->frozen) {
    // Our READY may be on its way: the server must not wait for a commit.
    ResumeMessage abort;
    abort.kind = ResumeKind::kAbort;
    SendLinkMessage(s, abort);
  }
  Unfreeze(s);
  s->next_resume_ns = clock_->NowNs() + kRetryMs * 1'000'000;
  if (!peer_may_have_committed) {
    const linger abortive{1, 0};
    os_->SetSockOpt(link->fd, SOL_SOCKET, SO_LINGER, &abortive,
                    sizeof(abortive));
    private_[link->fd].store(0);
    os_->Close(link->fd);
    s->link.reset();
    return;
  }
  // The server sent its READY and never saw the client's COMMIT or ABORT: the
  // client may be on the link already, sending from our D_s. Keep the link as
  // an old socket (its kernel holds what the client's kernel counts as
  // acknowledged) and move both sides to a new episode.
  s->leg.old_sock = link->fd;
  s->leg.old_sock_open = true;
  {
    absl::MutexLock lock(&s->mu);
    s->old_sock_for_app = link->fd;
  }
  s->leg.old_expects_commit = true;
  s->leg.old_prefix.clear();
  s->leg.old_read_offset = link->self_delivered;
  s->link.reset();
  ReFailover(s, s->episode + 1, why.empty() ? "the resume link broke" : why);
}

void EngineImpl::ReFailover(Session* s, uint32_t episode,
                            const std::string& why) {
  log_.Info("session ", s->label, ": moving to failover episode ", episode,
            " (", why, ")");
  if (s->leg.out != nullptr) writer_->RemoveChannel(s->leg.out);
  s->leg.out.reset();
  s->leg.channel.reset();
  (void)send_volume_->RemoveChannel(MyChannel(*s));
  if (watcher_ != nullptr) (void)watcher_->Unwatch(PeerChannel(*s));
  s->episode = episode;
  s->leg.peer_announced = false;
  s->leg.peer_failover_offset = 0;
  s->leg.fin_sent = false;
  uint64_t from;
  {
    FutexLockHolder lock(&s->send_mu);
    from = s->ring.tail();  // the peer may lack any byte it has not consumed
  }
  absl::Status started = StartStoragePath(s, from, s->delivered);
  if (!started.ok()) {
    EndSession(
        s, EIO,
        absl::StrCat("cannot open episode ", episode, ": ", started.message()));
    return;
  }
  Announce(s);
  {
    absl::MutexLock lock(&table_.mu);
    if (std::shared_ptr<Session> shared = table_.Find(s); shared != nullptr)
      to_register_.push_back(std::move(shared));
  }
  uint64_t one = 1;
  os_->Write(kick_fd_, &one, sizeof(one));
}

std::string EngineImpl::MyChannel(const Session& s) const {
  return ChannelName(s.id, SendDirection(s.role), s.episode,
                     IncarnationTag(process_id_, s.claim_ns.load()));
}

std::string EngineImpl::PeerChannel(const Session& s) const {
  return ChannelName(
      s.id,
      SendDirection(s.role == Role::kClient ? Role::kServer : Role::kClient),
      s.episode, IncarnationTag(s.peer_process, s.peer_claim_ns));
}

}  // namespace diskwire
