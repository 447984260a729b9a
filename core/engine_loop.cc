// The engine loop: one thread per process, whatever the number of sessions. It
// pumps the socket pairs of sessions in STORAGE to and from the volume, drains
// old TCP sockets after a failover, reads the inbox and probes DIRECT sessions
// for stalls; heartbeats.cc holds what it does with heartbeats.

#include <fcntl.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"
#include "core/socket_holders.h"

namespace diskwire {
namespace {

constexpr uint64_t kKickTag = 1;
constexpr uint64_t kWatcherTag = 2;
// A resume listener's tag is this plus its fd; pointers (session tags) are
// never this small.
constexpr uint64_t kResumeListenerTag = 16;

}  // namespace

void EngineImpl::StartThreadsOnce() {
  if (started_.load(std::memory_order_acquire)) return;
  absl::MutexLock lock(&start_mu_);
  if (started_.load()) return;
  for (int* fd :
       {&loop_fd_, &kick_fd_}) {  // inherited from a parent across fork
    if (*fd >= 0) os_->Close(*fd);
    *fd = -1;
  }
  SysResult ep = os_->EpollCreate1(EPOLL_CLOEXEC);
  SysResult kick = os_->EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!ep.ok() || !kick.ok()) {
    log_.Error("cannot start the engine loop: ",
               strerror(ep.ok() ? kick.error : ep.error));
    return;
  }
  loop_fd_ = static_cast<int>(ep.value);
  kick_fd_ = static_cast<int>(kick.value);
  private_[loop_fd_].store(1);
  private_[kick_fd_].store(1);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kKickTag;
  os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, kick_fd_, &ev);
  storage::WatcherOptions wopts;
  wopts.poll_interval = absl::Milliseconds(config_.poll_ms);
  auto watcher = recv()->NewWatcher(wopts);
  if (watcher.ok()) {
    watcher_ = std::move(*watcher);
    absl::Status w = watcher_->WatchInbox(process_id_);
    if (!w.ok()) log_.Warn("cannot watch the inbox: ", w.message());
    private_[watcher_->fd()].store(1);
    ev.data.u64 = kWatcherTag;
    os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, watcher_->fd(), &ev);
  } else {
    log_.Error("cannot watch the volume: ", watcher.status().message());
  }
  next_heartbeat_ns_ = clock_->NowNs();
  host_ = CurrentHost();
  next_prune_ns_ = clock_->NowNs() + kPruneIntervalNs;
  next_name_check_ns_ =
      clock_->NowNs() + 2 * config_.heartbeat_ms * int64_t{1'000'000};
  StartResumeListener();
  for (int listener : resume_listeners_) {
    ev.data.u64 = kResumeListenerTag + static_cast<uint64_t>(listener);
    os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, listener, &ev);
  }
  writer_ = std::make_unique<Writer>(clock_, WriterOptions{});
  writer_->Start();
  loop_thread_ = std::thread([this] { LoopMain(); });
  RegisterExitDrain();
  started_.store(true, std::memory_order_release);
}

namespace {

Session::LoopTag* TagFor(Session* s, int fd) {
  if (fd == s->eng_end) return &s->eng_tag;
  if (s->link != nullptr && fd == s->link->fd) return &s->link_tag;
  return &s->old_tag;
}

}  // namespace

void EngineImpl::LoopAdd(int fd, Session* s, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = TagFor(s, fd);
  os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void EngineImpl::LoopMod(int fd, Session* s, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = TagFor(s, fd);
  os_->EpollCtl(loop_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void EngineImpl::LoopDel(int fd) {
  os_->EpollCtl(loop_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EngineImpl::LoopMain() {
  epoll_event events[64];
  while (!stopping_.load()) {
    int64_t timeout_ms = std::max<int64_t>(config_.heartbeat_ms / 4, 1);
    if (watcher_ != nullptr &&
        watcher_->poll_interval() != absl::InfiniteDuration()) {
      timeout_ms = std::min<int64_t>(
          timeout_ms, absl::ToInt64Milliseconds(watcher_->poll_interval()));
    }
    SysResult n =
        os_->EpollWait(loop_fd_, events, 64, static_cast<int>(timeout_ms));
    if (!n.ok() && n.error != EINTR) {
      log_.Error("engine loop: epoll_wait: ", strerror(n.error));
      return;
    }
    bool volume_changed = false;
    for (int i = 0; i < (n.ok() ? n.value : 0); ++i) {
      if (events[i].data.u64 == kKickTag) {
        uint64_t v;
        os_->Read(kick_fd_, &v, sizeof(v));
        continue;
      }
      if (events[i].data.u64 == kWatcherTag) {
        volume_changed = true;
        continue;
      }
      if (events[i].data.u64 >= kResumeListenerTag &&
          events[i].data.u64 < kResumeListenerTag + Engine::kMaxFds) {
        AcceptResumeLinks(
            static_cast<int>(events[i].data.u64 - kResumeListenerTag));
        continue;
      }
      auto* tag = static_cast<Session::LoopTag*>(events[i].data.ptr);
      if (tag->kind == Session::LoopTag::kPendingLink) {
        ReadPendingLink(tag);
        continue;
      }
      Session* s = tag->session;
      if (tag->kind == Session::LoopTag::kResumeLink) {
        OnLinkEvent(s);
      } else if (tag->kind == Session::LoopTag::kOldSocket) {
        DrainOldSocket(s);
      } else {
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          PumpAppToVolume(s);
        }
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) && s->app_wrote_eof) {
          // Both directions of the pair are shut (or the application closed its
          // end): epoll would report the hang-up on every wait from now on.
          LoopDel(s->eng_end);
          s->eng_in_loop = false;
          continue;
        }
        if (events[i].events & EPOLLOUT) {
          s->want_eng_out = false;
          PumpVolumeToApp(s);
        }
      }
    }
    // New storage sessions: watch their descriptors and channels.
    std::vector<std::shared_ptr<Session>> fresh;
    {
      absl::MutexLock lock(&mu_);
      fresh.swap(to_register_);
    }
    for (auto& s : fresh) {
      if (s->state.load() != SessionState::kStorage) continue;
      if (s->eng_end >= 0 && s->eng_in_loop)
        LoopAdd(s->eng_end, s.get(), EPOLLIN);
      if (watcher_ != nullptr && s->reader != nullptr) {
        const std::string theirs = PeerChannel(*s);
        absl::Status w = watcher_->Watch(theirs);
        if (!w.ok()) log_.Warn("cannot watch ", theirs, ": ", w.message());
      }
      if (s->old_sock_open) LoopAdd(s->old_sock, s.get(), EPOLLIN);
      DrainOldSocket(s.get());
      PumpAppToVolume(s.get());
      ReadPeerChannel(s.get());
    }
    storage::VolumeWatcher::Changes changes;
    bool drained = false;
    if (volume_changed ||
        (watcher_ != nullptr &&
         watcher_->poll_interval() != absl::InfiniteDuration())) {
      if (watcher_ != nullptr) drained = watcher_->Drain(&changes).ok();
      HandleInbox();
    }
    Tick(drained ? &changes : nullptr);
  }
}

void EngineImpl::AnswerUnknownSession(const FailoverMessage& m) {
  const Role mine =
      m.sender_role == Role::kClient ? Role::kServer : Role::kClient;
  // Named as the announcer expects this side's channel: this process, and
  // the claim the announcer knew of it.
  const std::string channel =
      ChannelName(m.session, SendDirection(mine), std::max(m.episode, 1u),
                  IncarnationTag(process_id_, m.to_claim));
  storage::Record rst;
  rst.header.type = storage::RecordType::kRst;
  rst.header.session_id = m.session;
  rst.header.direction = SendDirection(mine);
  // The peer reads from what its application has read on.
  rst.header.stream_offset = m.delivered;
  absl::Status st = send_volume_->RemoveChannel(channel);
  absl::StatusOr<std::unique_ptr<storage::ChannelWriter>> writer =
      st.ok() ? send_volume_->OpenWriter(channel, storage::WriterOptions{})
              : absl::StatusOr<std::unique_ptr<storage::ChannelWriter>>(st);
  if (writer.ok()) st = (*writer)->Append({rst});
  if (writer.ok() && st.ok()) st = (*writer)->Close();
  if (!writer.ok()) st = writer.status();
  if (!st.ok()) {
    log_.Warn("session ", SessionIdHex(m.session), ": cannot answer ",
              m.from_process, " with a reset: ", st.message());
    return;
  }
  log_.Info("session ", SessionIdHex(m.session), ": ", m.from_process,
            " announced a failover of a connection this process no longer "
            "has; answered with a reset");
}

void EngineImpl::AbortOverStorage(Session* s) {
  {
    absl::MutexLock lock(&s->send_mu);
    s->app_wrote_eof = true;
  }
  ResetOverStorage(s, 0, "the application aborted it (SO_LINGER 0)");
}

void EngineImpl::Tick(const storage::VolumeWatcher::Changes* changes) {
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) all.push_back(s);
  }
  const int64_t now = clock_->NowNs();
  // A peer's channel is read when the watcher says it changed, and a pair
  // when it or the writer says so, not at every wake: each is a syscall or
  // two (an O_DIRECT block on a LUN) per session, and a busy session wakes
  // the loop thousands of times a second. Everything is read when the
  // watcher lost events or polls, and every kReadSweepNs whatever it says.
  bool read_all = watcher_ == nullptr || now >= next_read_sweep_ns_ ||
                  (changes != nullptr && changes->everything);
  if (now >= next_read_sweep_ns_) next_read_sweep_ns_ = now + kReadSweepNs;
  absl::flat_hash_set<std::string> changed;
  if (changes != nullptr && !read_all) {
    changed.insert(changes->channels.begin(), changes->channels.end());
  }
  for (auto& s : all) {
    SessionState st = s->state.load();
    // An opening connection's pair holds filler, not stream bytes, until the
    // listener's process answers (CheckOpening).
    if (st == SessionState::kStorage && !s->opening.load()) {
      bool aborted = false;
      if (s->app_end >= 0 && s->link == nullptr) {
        absl::MutexLock lock(&s->mu);
        if (s->names.empty()) {
          // The application closed its last name: closing ours too lets the
          // pair report its end to the engine.
          private_[s->app_end].store(0);
          os_->Close(s->app_end);
          s->app_end = -1;
          aborted = s->app_aborted;
        }
      }
      if (aborted) {
        AbortOverStorage(s.get());
        continue;
      }
      if (read_all || s->read_more ||
          (!changed.empty() && changed.contains(PeerChannel(*s)))) {
        ReadPeerChannel(s.get());
      }
      // The pair's own events pump it (above, in LoopMain); here only what
      // the writer's room callback asked for, and the sweep.
      if (read_all ||
          s->pump_owed->exchange(false, std::memory_order_acq_rel)) {
        PumpAppToVolume(s.get());
      }
      NoteVolumeWrites(s.get());
      MaybeFinish(s.get());
    }
  }
  if (now >= next_resume_dial_ns_) {
    // Housekeeping that needs no more than this cadence, not every wake.
    next_resume_dial_ns_ = now + kResumeDialIntervalMs * 1'000'000;
    // An Append hung on one channel must not hold the others' records.
    if (writer_ != nullptr) writer_->Supervise();
    ExpireResumes();
    ReleaseEndedSessions();
    DialResumes();
    // Announcements waiting for their session: matched, or answered, even
    // when nothing more changes on the volume.
    if (!unmatched_.empty()) HandleInbox();
    CheckOpening();
    if (!open_dials_.empty()) CheckOpenDials();
  }
  if (log_.Enabled(LogLevel::kDebug) && now >= next_dump_ns_) {
    next_dump_ns_ = now + 1'000'000'000;
    for (auto& s : all) {
      if (s->state.load() != SessionState::kStorage) continue;
      absl::MutexLock lock(&s->send_mu);
      log_.Debug("session ", s->label, ": delivered ", s->delivered,
                 " ready_end ", s->reassembly->contiguous_end(), " buffered ",
                 s->reassembly->buffered_bytes(), " peer_fin ", s->peer_fin,
                 "@", s->peer_fin_offset, " | ring ", s->ring.tail(), "..",
                 s->ring.head(), " to_volume ", s->next_to_volume, " buffered ",
                 s->out->buffered_bytes(), " app_eof ", s->app_wrote_eof,
                 " fin_sent ", s->fin_sent, " peer_ack ", s->peer_ack);
    }
  }
  if (now >= next_direct_check_ns_) {
    next_direct_check_ns_ =
        now + std::max<int64_t>(config_.detect_ms / 25, 10) * 1'000'000;
    CheckDirectSessions();
  }
  if (now >= next_heartbeat_ns_ ||
      heartbeat_due_.exchange(false, std::memory_order_acq_rel)) {
    next_heartbeat_ns_ = now + config_.heartbeat_ms * 1'000'000;
    PublishHeartbeat();
    CheckPeers();
  }
  if (now >= next_prune_ns_) {
    // The survivors clean up after processes that died: a long-lived cluster
    // keeps a bounded volume without an operator.
    next_prune_ns_ = now + kPruneIntervalNs;
    PruneDeadProcesses();
  }
  if (now >= next_name_check_ns_) {
    // A clash of node names is a configuration error, not an event: checked
    // soon after the start (StartThreadsOnce), then at a slow cadence.
    next_name_check_ns_ = now + int64_t{30'000'000'000};
    auto peers = peers_->Refresh();
    if (peers.ok()) CheckNodeName(**peers);
  }
}

void EngineImpl::NoteVolumeWrites(Session* s) {
  if (s->out == nullptr) return;
  const absl::Status written = s->out->status();
  if (written.ok() == s->volume_writes_ok) return;
  s->volume_writes_ok = written.ok();
  if (written.ok()) {
    log_.Info("session ", s->label, ": writes to the volume go through again");
  } else {
    // Backpressure holds the application's writes meanwhile: nothing is
    // lost, but nothing moves either, and the operator must know why.
    log_.Warn("session ", s->label, ": ",
              absl::IsResourceExhausted(written) ? "the volume is full: " : "",
              written.message(), "; the application's writes wait");
  }
}

void EngineImpl::ReleaseEndedSessions() {
  // Long enough for the writer to have appended the last records, and for a
  // hook that raced the application's close() to have left.
  constexpr int64_t kGraceNs = 5'000'000'000;
  const int64_t now = clock_->NowNs();
  std::vector<std::shared_ptr<Session>> ended;
  std::vector<std::shared_ptr<Session>> buried;
  bool freed = false;  // sessions left the graveyard (when `buried` goes)
  {
    absl::MutexLock lock(&mu_);
    const size_t buried_before = graveyard_.size();
    graveyard_.erase(std::remove_if(graveyard_.begin(), graveyard_.end(),
                                    [&](const auto& g) {
                                      return now - g.second > kGraceNs;
                                    }),
                     graveyard_.end());
    freed = graveyard_.size() < buried_before;
    for (const auto& [s, since] : graveyard_) {
      if (!s->buffers_released.exchange(true)) buried.push_back(s);
    }
    for (auto& [key, s] : sessions_) {
      if (s->state.load() == SessionState::kClosed &&
          now - s->closed_ns > kGraceNs) {
        // An Append still running (a stalled volume) would hold this loop in
        // RemoveChannel: the session waits for a later pass.
        if (s->out != nullptr && s->out->appending_since_ns() >= 0) continue;
        absl::MutexLock slock(&s->mu);
        if (s->names.empty()) ended.push_back(s);
      }
    }
  }
  // A session waits out the grace in the graveyard without its buffers: a
  // process that opens thousands of connections a second would otherwise
  // hold seconds' worth of 64 KiB replay chunks.
  for (auto& s : buried) {
    absl::MutexLock send_lock(&s->send_mu);
    s->ring.ReleaseAll();  // nothing is replayed once it left sessions_
  }
  trim_owed_ = trim_owed_ || freed || !buried.empty();
  if (trim_owed_ && now >= next_trim_ns_) {
    trim_owed_ = false;
    // What the ended sessions freed, back to the system: without it a
    // daemon's RSS keeps the high-water mark of its busiest second, and
    // creeps with fragmentation over millions of connections.
    next_trim_ns_ = now + kTrimIntervalNs;
    malloc_trim(0);
  }
  for (auto& s : ended) {
    // The channel stays on the volume while the peer may still read it: it
    // goes once the peer has let go of the session too (RemoveRetired).
    if (s->episode >= 1 && !s->label.empty()) {
      retired_.push_back(
          {MyChannel(*s), s->id,
           s->role == Role::kClient ? Role::kServer : Role::kClient,
           s->peer_process});
    }
    ReleaseStorageState(s.get(), /*remove_channel=*/false);
    if (s->reserve_fd >= 0) {  // the port of a connection opened over storage
      private_[s->reserve_fd].store(0);
      os_->Close(s->reserve_fd);
      s->reserve_fd = -1;
    }
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(KeyOf(s->id, s->role));
    if (it != sessions_.end() && it->second == s) {
      graveyard_.push_back({s, now});
      sessions_.erase(it);
    }
  }
}

bool EngineImpl::FinishLinger(Session* s) {
  {
    absl::MutexLock send_lock(&s->send_mu);
    if (s->linger_fd < 0) return true;
    if (s->maybe_shared.load()) {
      // The application's close was its last name here, but a process it
      // forked may still hold the connection: then the stream is not over
      // and the connection is that process's to carry. Otherwise the FIN
      // the close deferred goes now.
      auto held = OtherProcessHolds(s->linger_fd);
      s->maybe_shared.store(false);
      if (held.ok() && !*held) {
        if (s->sent_to_socket < s->ring.head()) {
          s->fin_owed = true;
        } else if (!s->shut_wr) {
          os_->Shutdown(s->linger_fd, SHUT_WR);
          s->shut_wr = true;
        }
        return false;
      }
      log_.Debug("session ", s->label, ": another process holds it (",
                 held.ok() ? "seen in /proc" : held.status().message(),
                 "); this one lets go");
      s->dormant.store(true);  // no heartbeat entry, no failover
    } else {
      auto sample = probe_.Sample(s->linger_fd);
      if (!sample.ok()) return false;
      // Still bytes (or our FIN) the peer kernel has not acknowledged: keep
      // lingering.
      if (sample->outq > 0) return false;
      // The kernel's queue can also be empty because it gave up (a reset, a
      // timeout): then the path failed, and the failover check that follows
      // takes the session on. The socket is the engine's alone now, so
      // reading (and clearing) its error takes nothing from anyone.
      if (sample->state == TCP_CLOSE) {
        auto error = probe_.PendingError(s->linger_fd);
        if (!error.ok() || *error != 0) return false;
      }
    }
    private_[s->linger_fd].store(0, std::memory_order_release);
    os_->Close(s->linger_fd);
    s->linger_fd = -1;
  }
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(KeyOf(s->id, s->role));
  if (it != sessions_.end() && it->second.get() == s) {
    graveyard_.push_back({it->second, clock_->NowNs()});
    sessions_.erase(it);
  }
  return true;
}

void EngineImpl::CheckDirectSessions() {
  std::vector<std::shared_ptr<Session>> direct;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) {
      if (s->state.load() == SessionState::kDirect) direct.push_back(s);
    }
    for (auto& s : pending_) direct.push_back(s);
  }
  for (auto& s : direct) {
    if (s->dormant.load()) continue;
    {
      // After a resume: what the peer lacks goes out even if the application
      // sends nothing more.
      absl::MutexLock send_lock(&s->send_mu);
      if (s->sent_to_socket < s->ring.head() || s->fin_owed) {
        absl::MutexLock lock(&s->mu);
        const int fd = s->names.empty() ? s->linger_fd : s->names[0];
        if (fd >= 0 && s->state.load() == SessionState::kDirect)
          FlushBacklog(s.get(), fd);
      } else if (s->ring.size() > 0 && s->ring.head() == s->idle_check_head &&
                 s->state.load() == SessionState::kDirect) {
        // Idle since the last look: what the peer's kernel holds is released.
        TrimByKernelAck(s.get());
      }
      s->idle_check_head = s->ring.head();
    }
    bool closed_by_application;
    {
      absl::MutexLock lock(&s->mu);
      closed_by_application = s->names.empty();
    }
    if (closed_by_application && s->linger_fd >= 0 && FinishLinger(s.get()))
      continue;
    absl::MutexLock lock(
        &s->mu);  // Close() takes it too: the fd cannot be reused under us
    if (s->names.empty() && s->linger_fd < 0) continue;
    const int fd = s->names.empty() ? s->linger_fd : s->names[0];
    if (!s->endpoints_known) {
      s->mu.Unlock();
      FinishAdoption(s.get(), fd);
      s->mu.Lock();
      continue;
    }
    auto sample = probe_.Sample(fd);
    if (!sample.ok()) continue;
    s->bytes_in_network.store(sample->delivered() + s->in_adjust,
                              std::memory_order_relaxed);
    // A kernel that closed the connection leaves its error pending for the
    // application, which would see it on its next call.
    if (s->detector.OnSample(sample->path_sample())) {
      const std::string reason = s->detector.verdict().detail;
      s->mu.Unlock();
      TriggerFailover(s.get(), reason, "");
      s->mu.Lock();
    }
  }
}

void EngineImpl::HandleInbox() {
  auto inbox = recv()->TakeInbox(process_id_);
  if (!inbox.ok()) {
    log_.Warn("reading the inbox: ", inbox.status().message());
    return;
  }
  rejected_records_.fetch_add(inbox->problems.size(),
                              std::memory_order_relaxed);
  for (const std::string& problem : inbox->problems)
    log_.Warn("inbox: ", problem);
  const int64_t now = clock_->NowNs();
  for (const storage::InboxMessage& msg : inbox->messages) {
    auto m = DecodeFailover(msg.payload);
    if (!m.ok()) {
      log_.Warn("inbox message ", msg.name, ": ", m.status().message());
      rejected_records_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (m->IsOpenRequest()) {
      HandleOpenRequest(*m);
    } else if (!m->answer.empty()) {
      HandleOpenAnswer(*m);
    } else {
      unmatched_.push_back({*m, now});
    }
  }
  std::vector<std::pair<FailoverMessage, int64_t>> keep;
  for (auto& [m, since] : unmatched_) {
    std::shared_ptr<Session> s;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(KeyOf(m.session, m.sender_role == Role::kClient
                                                    ? Role::kServer
                                                    : Role::kClient));
      if (it != sessions_.end()) s = it->second;
    }
    if (s == nullptr) {
      // The announcement can overtake our own accept(); give the session a
      // moment to appear. Then it is one this process no longer has (it
      // ended here): TCP answers a segment for it with a reset, and so do we,
      // or the peer would wait for this process to die.
      if (now - since < config_.peer_timeout_ms * 1'000'000) {
        keep.push_back({m, since});
      } else {
        AnswerUnknownSession(m);
      }
      continue;
    }
    const SessionState st = s->state.load();
    if (st == SessionState::kDirect) {
      s->peer_claim_ns = m.claim;
      TriggerFailover(s.get(), "the peer announced a failover", m.from_process,
                      m.episode);
    } else if (st == SessionState::kStorage || st == SessionState::kResuming) {
      // A connection opened over the volume learns which process accepted
      // it (a forked child, perhaps) from that process's announcement.
      if (s->peer_process.empty() ||
          (s->opened_over_storage && m.episode == 1 && s->episode == 1)) {
        s->peer_process = m.from_process;
      }
      if (s->peer_process == m.from_process && s->peer_claim_ns == 0) {
        s->peer_claim_ns = m.claim;
        OpenPeerReader(s.get());
      }
      if (m.episode > s->episode) {
        // The peer left an episode this side is still in (it gave up a
        // resume, or failed over again while this side was resuming).
        if (s->link != nullptr) {
          AbandonResume(s.get(), "the peer moved to a new episode", false);
        }
        ReFailover(s.get(), m.episode, "the peer announced a new episode");
      }
    }
  }
  unmatched_.swap(keep);
}

}  // namespace diskwire
