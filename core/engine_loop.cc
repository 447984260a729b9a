// The engine loop: one thread per process, whatever the number of sessions. It
// pumps the socket pairs of sessions in STORAGE to and from the volume, drains
// old TCP sockets after a failover and runs the periodic work; heartbeats.cc
// holds what it does with heartbeats, inbox.cc with messages, direct_checks.cc
// its probes of DIRECT sessions.

#include <fcntl.h>
#include <malloc.h>
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
  if (fd == s->leg.eng_end) return &s->eng_tag;
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

void EngineImpl::ReleasePrivate(int fd) {
  if (fd >= 0 && fd < kMaxFds) private_[fd].store(0);
}

void EngineImpl::ForgetPeerChannel(Session* s) {
  if (watcher_ != nullptr) (void)watcher_->Unwatch(PeerChannel(*s));
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
    {
      // A heartbeat scheduled sooner (for a new session or listener, which
      // its peers wait to see) ends the wait, and so does the check of
      // direct sessions, whose failure detector samples every detect_ms / 25.
      absl::MutexLock lock(&table_.mu);
      int64_t due_ns = next_heartbeat_ns_;
      if (table_.size() > 0 || !table_.connecting().empty())
        due_ns = std::min(due_ns, next_direct_check_ns_);
      due_ns -= clock_->NowNs();
      timeout_ms =
          std::clamp<int64_t>((due_ns + 999'999) / 1'000'000, 0, timeout_ms);
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
        storage_path_.DrainOldSocket(s);
      } else {
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          storage_path_.PumpAppToVolume(s);
        }
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) &&
            s->leg.app_wrote_eof) {
          // Both directions of the pair are shut (or the application closed its
          // end): epoll would report the hang-up on every wait from now on.
          LoopDel(s->leg.eng_end);
          s->leg.eng_in_loop = false;
          continue;
        }
        if (events[i].events & EPOLLOUT) {
          s->leg.want_eng_out = false;
          storage_path_.PumpVolumeToApp(s);
        }
      }
    }
    // New storage sessions: watch their descriptors and channels.
    std::vector<std::shared_ptr<Session>> fresh;
    {
      absl::MutexLock lock(&table_.mu);
      fresh.swap(to_register_);
    }
    for (auto& s : fresh) {
      if (s->state.load() != SessionState::kStorage) continue;
      if (s->leg.eng_end >= 0 && s->leg.eng_in_loop)
        LoopAdd(s->leg.eng_end, s.get(), EPOLLIN);
      if (watcher_ != nullptr && s->leg.reader != nullptr) {
        const std::string theirs = PeerChannel(*s);
        absl::Status w = watcher_->Watch(theirs);
        if (!w.ok()) log_.Warn("cannot watch ", theirs, ": ", w.message());
      }
      // A socket whose read side the swap shut stays readable (a read of 0):
      // edge-triggered, it wakes the loop only when something arrives.
      if (s->leg.old_sock_open) {
        LoopAdd(s->leg.old_sock, s.get(),
                EPOLLIN | (s->leg.old_read_shut ? uint32_t{EPOLLET} : 0u));
      }
      storage_path_.DrainOldSocket(s.get());
      storage_path_.PumpAppToVolume(s.get());
      storage_path_.ReadPeerChannel(s.get());
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

void EngineImpl::AbortOverStorage(Session* s) {
  {
    FutexLockHolder lock(&s->send_mu);
    s->leg.app_wrote_eof = true;
  }
  storage_path_.ResetOverStorage(s, 0,
                                 "the application aborted it (SO_LINGER 0)");
}

void EngineImpl::Tick(const storage::VolumeWatcher::Changes* changes) {
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&table_.mu);
    all = table_.Snapshot();
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
      if (s->leg.app_end >= 0 && s->link != nullptr &&
          s->link->phase == ResumeLink::Phase::kConnecting) {
        // Closed while a resume's connect waits for an answer (on a path
        // still down, until the attempt times out): the end of the
        // connection goes over the volume now, not a second later.
        bool closed;
        {
          absl::MutexLock lock(&s->mu);
          closed = s->names.empty();
        }
        if (closed) AbandonResume(s.get(), "", false);
      }
      if (s->leg.app_end >= 0 && s->link == nullptr) {
        absl::MutexLock lock(&s->mu);
        if (s->names.empty()) {
          // The application closed its last name: closing ours too lets the
          // pair report its end to the engine.
          private_[s->leg.app_end].store(0);
          os_->Close(s->leg.app_end);
          s->leg.app_end = -1;
          aborted = s->app_aborted;
        }
      }
      if (aborted) {
        AbortOverStorage(s.get());
        continue;
      }
      if (read_all || s->leg.read_more ||
          (!changed.empty() && changed.contains(PeerChannel(*s)))) {
        storage_path_.ReadPeerChannel(s.get());
      }
      // The pair's own events pump it (above, in LoopMain); here only what
      // the writer's room callback asked for, and the sweep.
      if (read_all ||
          s->leg.pump_owed->exchange(false, std::memory_order_acq_rel)) {
        storage_path_.PumpAppToVolume(s.get());
      }
      NoteVolumeWrites(s.get());
      storage_path_.MaybeFinish(s.get());
    }
  }
  if (now >= next_resume_dial_ns_) {
    // Housekeeping that needs no more than this cadence, not every wake.
    next_resume_dial_ns_ = now + kResumeDialIntervalMs * 1'000'000;
    // An Append hung on one channel must not hold the others' records.
    if (writer_ != nullptr) writer_->Supervise();
    for (auto& s : all) {
      // The chunks a stream did not cycle through since the last pass go
      // back to malloc (core/replay_ring.h).
      FutexLockHolder send_lock(&s->send_mu);
      s->ring.ReleaseIdleSpares();
    }
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
      FutexLockHolder lock(&s->send_mu);
      log_.Debug(
          "session ", s->label, ": delivered ", s->delivered, " ready_end ",
          s->leg.reassembly->contiguous_end(), " buffered ",
          s->leg.reassembly->buffered_bytes(), " peer_fin ", s->leg.peer_fin,
          "@", s->leg.peer_fin_offset, " | ring ", s->ring.tail(), "..",
          s->ring.head(), " to_volume ", s->leg.next_to_volume, " buffered ",
          s->leg.out->buffered_bytes(), " app_eof ", s->leg.app_wrote_eof,
          " fin_sent ", s->leg.fin_sent, " peer_ack ", s->peer_ack);
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
  if (s->leg.out == nullptr) return;
  const absl::Status written = s->leg.out->status();
  if (written.ok() == s->leg.volume_writes_ok) return;
  s->leg.volume_writes_ok = written.ok();
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
    absl::MutexLock lock(&table_.mu);
    freed = table_.SweepGraveyard(now, kGraceNs, &buried);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->state.load() == SessionState::kClosed &&
          now - s->closed_ns > kGraceNs) {
        // An Append still running (a stalled volume) would hold this loop in
        // RemoveChannel: the session waits for a later pass.
        if (s->leg.out != nullptr && s->leg.out->appending_since_ns() >= 0)
          return;
        absl::MutexLock slock(&s->mu);
        if (s->names.empty()) ended.push_back(s);
      }
    });
  }
  // A session waits out the grace in the graveyard without its buffers: a
  // process that opens thousands of connections a second would otherwise
  // hold seconds' worth of 64 KiB replay chunks.
  for (auto& s : buried) {
    FutexLockHolder send_lock(&s->send_mu);
    s->ring.ReleaseAll();  // nothing is replayed once it left the table
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
    absl::MutexLock lock(&table_.mu);
    table_.Bury(s.get(), now);
  }
}

}  // namespace diskwire
