// The engine loop: one thread per process, whatever the number of sessions. It
// pumps the socket pairs of sessions in STORAGE to and from the volume, drains
// old TCP sockets after a failover, reads the inbox, probes DIRECT sessions for
// stalls, checks peers' heartbeats and publishes this process's own.

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"

namespace diskwire {
namespace {

constexpr int kTagEngEnd = 1;  // Session::eng_tag
constexpr int kTagOld = 2;     // Session::old_tag
constexpr uint64_t kKickTag = 1;
constexpr uint64_t kWatcherTag = 2;
constexpr size_t kWriterBufferBytes = 1 << 20;  // WriterOptions::buffer_bytes

// Engines whose loops run, drained by the exit hook.
absl::Mutex g_exit_mu;
std::vector<EngineImpl*> g_exit_engines ABSL_GUARDED_BY(g_exit_mu);

}  // namespace

void EngineImpl::DrainAtExitHook() {
  std::vector<EngineImpl*> engines;
  {
    absl::MutexLock lock(&g_exit_mu);
    engines.swap(g_exit_engines);
  }
  for (EngineImpl* e : engines) e->DrainAtExit();
}

void EngineImpl::StopWithoutDrain() {
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.erase(
        std::remove(g_exit_engines.begin(), g_exit_engines.end(), this),
        g_exit_engines.end());
  }
  if (stopping_.exchange(true)) return;
  if (kick_fd_ >= 0) {
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  if (writer_ != nullptr) writer_->Stop();
}

void EngineImpl::FailOverUnacknowledgedAtExit() {
  // TCP's kernel keeps sending a closed or exiting socket's bytes; across a
  // dead network they would be lost with the process. Give the peer kernel the
  // detection bound to acknowledge them, then carry what it still lacks over
  // the volume.
  std::vector<std::shared_ptr<Session>> direct;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) {
      if (s->state.load() == SessionState::kDirect) direct.push_back(s);
    }
  }
  const int64_t deadline = clock_->NowNs() + config_.detect_ms * 1'000'000;
  while (!direct.empty()) {
    std::vector<std::shared_ptr<Session>> waiting;
    for (auto& s : direct) {
      absl::MutexLock lock(&s->mu);
      const int fd = !s->names.empty() ? s->names[0] : s->linger_fd;
      if (fd < 0) continue;
      auto sample = probe_.Sample(fd);
      if (sample.ok() && sample->outq > 0) waiting.push_back(s);
    }
    direct.swap(waiting);
    if (direct.empty()) break;
    if (clock_->NowNs() >= deadline) {
      for (auto& s : direct) {
        TriggerFailover(s.get(),
                        "exiting with bytes the peer has not acknowledged", "");
      }
      break;
    }
    pollfd none{-1, 0, 0};
    os_->Poll(&none, 1,
              10);  // a short wait between two looks at the kernel's queues
  }
}

void EngineImpl::DrainAtExit() {
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.erase(
        std::remove(g_exit_engines.begin(), g_exit_engines.end(), this),
        g_exit_engines.end());
  }
  if (stopping_.load()) return;
  FailOverUnacknowledgedAtExit();
  if (stopping_.exchange(true)) return;
  if (kick_fd_ >= 0) {
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) {
    if (s->state.load() != SessionState::kStorage) continue;
    {
      absl::MutexLock lock(&s->mu);
      s->names.clear();  // the application is gone with the process
    }
    PumpAppToVolume(s.get());  // what is left in the pair, before the FIN
    {
      absl::MutexLock lock(&s->send_mu);
      s->app_wrote_eof = true;
      SubmitToWriter(s.get());
    }
    absl::Status idle = s->out != nullptr ? s->out->AwaitIdle(absl::Seconds(5))
                                          : absl::OkStatus();
    if (!idle.ok()) {
      log_.Error(
          "session ", s->label,
          ": exiting before the volume took everything: ", idle.message());
    }
  }
  if (writer_ != nullptr) writer_->Stop();
  for (auto& s : all) {
    if (s->channel != nullptr) (void)s->channel->Sync();
  }
  if (send_volume_ != nullptr) (void)send_volume_->RemoveHeartbeat(process_id_);
}

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
  writer_ = std::make_unique<Writer>(clock_, WriterOptions{});
  writer_->Start();
  loop_thread_ = std::thread([this] { LoopMain(); });
  {
    absl::MutexLock lock(&g_exit_mu);
    g_exit_engines.push_back(this);
  }
  static const bool registered = [] {
    return std::atexit(&EngineImpl::DrainAtExitHook) == 0;
  }();
  (void)registered;
  started_.store(true, std::memory_order_release);
}

void EngineImpl::LoopAdd(int fd, Session* s, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = fd == s->eng_end ? &s->eng_tag : &s->old_tag;
  os_->EpollCtl(loop_fd_, EPOLL_CTL_ADD, fd, &ev);
}

void EngineImpl::LoopMod(int fd, Session* s, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = fd == s->eng_end ? &s->eng_tag : &s->old_tag;
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
      auto* tag = static_cast<Session::LoopTag*>(events[i].data.ptr);
      Session* s = tag->session;
      if (tag->kind == kTagOld) {
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
    std::vector<std::pair<std::shared_ptr<Session>, std::string>> fail;
    {
      absl::MutexLock lock(&mu_);
      fresh.swap(to_register_);
      fail.swap(to_fail_);
    }
    for (auto& [s, reason] : fail)
      TriggerFailover(s.get(), reason, s->peer_process);
    for (auto& s : fresh) {
      if (s->eng_end >= 0) LoopAdd(s->eng_end, s.get(), EPOLLIN);
      LoopAdd(s->old_sock, s.get(), EPOLLIN);
      if (watcher_ != nullptr) {
        const std::string theirs = ChannelName(
            s->id, SendDirection(s->role == Role::kClient ? Role::kServer
                                                          : Role::kClient));
        absl::Status w = watcher_->Watch(theirs);
        if (!w.ok()) log_.Warn("cannot watch ", theirs, ": ", w.message());
      }
      DrainOldSocket(s.get());
      PumpAppToVolume(s.get());
      ReadPeerChannel(s.get());
    }
    if (volume_changed ||
        (watcher_ != nullptr &&
         watcher_->poll_interval() != absl::InfiniteDuration())) {
      storage::VolumeWatcher::Changes changes;
      if (watcher_ != nullptr) (void)watcher_->Drain(&changes);
      // Reading a channel with nothing new costs one read past its end: cheap
      // enough to do for every storage session whenever anything changed, which
      // also covers lost events.
      HandleInbox();
    }
    Tick();
  }
}

void EngineImpl::Tick() {
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) {
    SessionState st = s->state.load();
    if (st == SessionState::kStorage) {
      ReadPeerChannel(s.get());
      PumpAppToVolume(s.get());
      MaybeFinish(s.get());
    }
  }
  const int64_t now = clock_->NowNs();
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
  if (now >= next_heartbeat_ns_) {
    next_heartbeat_ns_ = now + config_.heartbeat_ms * 1'000'000;
    PublishHeartbeat();
    CheckPeers();
  }
}

bool EngineImpl::FinishLinger(Session* s) {
  {
    absl::MutexLock send_lock(&s->send_mu);
    if (s->linger_fd < 0) return true;
    auto sample = probe_.Sample(s->linger_fd);
    if (!sample.ok()) return false;
    // Still bytes (or our FIN) the peer kernel has not acknowledged: keep
    // lingering.
    if (sample->outq > 0) return false;
    // The kernel's queue can also be empty because it gave up (a reset, a
    // timeout): then the path failed, and the failover check that follows takes
    // the session on. The socket is the engine's alone now, so reading (and
    // clearing) its error takes nothing from anyone.
    if (sample->state == TCP_CLOSE) {
      auto error = probe_.PendingError(s->linger_fd);
      if (!error.ok() || *error != 0) return false;
    }
    private_[s->linger_fd].store(0, std::memory_order_release);
    os_->Close(s->linger_fd);
    s->linger_fd = -1;
  }
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(KeyOf(s->id, s->role));
  if (it != sessions_.end() && it->second.get() == s) sessions_.erase(it);
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
    if (s->names.empty() && s->linger_fd >= 0 && FinishLinger(s.get()))
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
    s->bytes_in_network.store(sample->delivered(), std::memory_order_relaxed);
    bool failed = false;
    std::string reason;
    if (sample->state != TCP_ESTABLISHED && sample->state != TCP_CLOSE_WAIT &&
        sample->state != TCP_FIN_WAIT1 && sample->state != TCP_FIN_WAIT2 &&
        sample->state != TCP_SYN_SENT && sample->state != TCP_SYN_RECV) {
      // TCP_CLOSE with an error pending: the kernel gave up (user timeout) or a
      // reset came. The error stays pending for the application, which would
      // see it on its next call.
      failed = sample->state == TCP_CLOSE;
      reason = "the kernel closed the connection";
    } else if (s->detector.OnSample(sample->stall_sample())) {
      failed = true;
      reason =
          "no acknowledgement for outstanding data within the detection bound";
    } else if (sample->outq > 0 &&
               sample->last_ack_recv_ms >= config_.detect_ms) {
      // After retransmission timeouts the kernel holds the queue back as not
      // yet sent, so nothing counts as in flight; but bytes queued and no ACK
      // at all for the bound is a dead path (a zero window still gets ACKs for
      // its probes).
      failed = true;
      reason = "no acknowledgement at all within the detection bound";
    }
    if (failed) {
      s->mu.Unlock();
      TriggerFailover(s.get(), reason, "");
      s->mu.Lock();
    }
  }
}

void EngineImpl::PumpAppToVolume(Session* s) {
  if (s->eng_end < 0 || s->state.load() != SessionState::kStorage) return;
  char buf[64 << 10];
  {
    absl::MutexLock lock(&s->send_mu);
    // Read the application's bytes into the ring while it and the writer's
    // buffer have room: a full one stops the reading, and the socket pair
    // pushes back on the application.
    while (!s->app_wrote_eof && s->out->buffered_bytes() < kWriterBufferBytes) {
      size_t room = std::min(s->ring.Free(), sizeof(buf));
      if (room == 0) break;
      SysResult r = os_->Read(s->eng_end, buf, room);
      if (r.ok() && r.value > 0) {
        s->ring.Append(absl::string_view(buf, r.value));
        SubmitToWriter(s);
        continue;
      }
      if (r.ok() && r.value == 0) {
        log_.Debug("session ", s->label,
                   ": the application shut down writing at ", s->ring.head());
        s->app_wrote_eof = true;
      }
      if (!r.ok() && r.error != EAGAIN && r.error != EINTR)
        s->app_wrote_eof = true;
      break;
    }
    SubmitToWriter(s);
  }
  UpdateEventMask(s);
}

void EngineImpl::SubmitToWriter(Session* s) {
  while (s->next_to_volume < s->ring.head()) {
    auto view =
        s->ring.ViewFrom(s->next_to_volume, s->ring.head() - s->next_to_volume);
    if (!view.ok()) {
      log_.Error("session ", s->label,
                 ": replay ring: ", view.status().message());
      return;
    }
    absl::StatusOr<size_t> taken =
        s->out->TrySubmitData(s->next_to_volume, view->first);
    if (!taken.ok()) {
      log_.Error("session ", s->label, ": writer: ", taken.status().message());
      return;
    }
    s->next_to_volume += *taken;
    if (*taken < view->first.size())
      return;  // the writer's buffer is full: its callback kicks
  }
  if (s->app_wrote_eof && !s->fin_sent) {
    absl::Status fin =
        s->out->SubmitControl(storage::RecordType::kFin, s->ring.head());
    if (fin.ok()) {
      log_.Debug("session ", s->label, ": FIN at ", s->ring.head());
      s->fin_sent = true;
    } else {
      log_.Error("session ", s->label, ": writer: ", fin.message());
    }
  }
}

void EngineImpl::UpdateEventMask(Session* s) {
  if (s->eng_end < 0 || !s->eng_in_loop) return;
  uint32_t events = 0;
  {
    absl::MutexLock lock(&s->send_mu);
    if (!s->app_wrote_eof && s->ring.Free() > 0 &&
        s->out->buffered_bytes() < kWriterBufferBytes) {
      events |= EPOLLIN;
    }
  }
  if (s->want_eng_out) events |= EPOLLOUT;
  LoopMod(s->eng_end, s, events);
}

bool EngineImpl::OrderlyClose(Session* s, int fd) {
  // TCP_CLOSE follows an abort (a timeout, a reset: no FIN) but also an orderly
  // close of both sides while the application still held the socket (the
  // kernel's time-wait takeover). Only the pending error tells them apart, and
  // reading it clears it: remember the answer.
  if (s->old_close_orderly < 0) {
    auto error = probe_.PendingError(fd);
    s->old_close_orderly =
        !s->abort_consumed.load() && error.ok() && *error == 0 ? 1 : 0;
  }
  return s->old_close_orderly == 1;
}

bool EngineImpl::OrderlyEndOfFile(Session* s, int fd) {
  // A read of 0 follows a FIN, but also a connection the kernel aborted: only
  // the states a FIN leads to make it the peer application's end of stream.
  auto sample = probe_.Sample(fd);
  if (!sample.ok()) return false;
  switch (sample->state) {
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
    case TCP_TIME_WAIT:
      return true;
    case TCP_CLOSE:
      return OrderlyClose(s, fd);
    default:
      return false;
  }
}

void EngineImpl::DrainOldSocket(Session* s) {
  if (!s->old_sock_open) return;
  char buf[64 << 10];
  bool close_it = false;
  while (true) {
    SysResult r = os_->Read(s->old_sock, buf, sizeof(buf));
    if (r.ok() && r.value > 0) {
      absl::Status offered = s->reassembly->Offer(
          s->old_read_offset, absl::string_view(buf, r.value));
      if (!offered.ok()) {
        log_.Error("session ", s->label, ": old socket: ", offered.message());
        close_it = true;
        break;
      }
      s->old_read_offset += r.value;
      s->bytes_in_network.fetch_add(r.value, std::memory_order_relaxed);
      continue;
    }
    if (r.ok() && r.value == 0 && !s->peer_fin &&
        OrderlyEndOfFile(s, s->old_sock)) {
      // The peer application's FIN, sent while it was DIRECT (an engine never
      // closes an old socket with a FIN): its stream ends here.
      s->peer_fin = true;
      s->peer_fin_offset = s->old_read_offset;
    }
    if (r.ok() || (r.error != EAGAIN && r.error != EINTR))
      close_it = true;  // EOF or error

    break;
  }
  // Once the peer has moved (it announced) and everything below its failover
  // offset is here, the old socket has nothing more to give.
  if (s->peer_announced &&
      s->reassembly->next_offset() >= s->peer_failover_offset) {
    close_it = true;
  }
  if (close_it) {
    log_.Debug("session ", s->label, ": old socket done at ",
               s->old_read_offset, ", next ", s->reassembly->next_offset());
    LoopDel(s->old_sock);
    // An abortive close: the peer's engine holds its own old socket and must
    // never take an orderly FIN from us for its application's end of file.
    linger l{1, 0};
    os_->SetSockOpt(s->old_sock, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    private_[s->old_sock].store(0);
    os_->Close(s->old_sock);
    s->old_sock_open = false;
  }
  PumpVolumeToApp(s);
}

void EngineImpl::ReadPeerChannel(Session* s) {
  if (s->reader == nullptr || s->state.load() != SessionState::kStorage) return;
  std::vector<storage::Record> records;
  absl::StatusOr<size_t> got = s->reader->ReadAvailable(&records, 4 << 20);
  if (!got.ok()) {
    EndSession(s, EIO,
               absl::StrCat("the peer's channel is unreadable: ",
                            got.status().message()));
    return;
  }
  const uint8_t peer_dir =
      SendDirection(s->role == Role::kClient ? Role::kServer : Role::kClient);
  const int64_t now_real = clock_->RealtimeNs();
  uint64_t peer_ack = s->peer_ack;
  for (const storage::Record& r : records) {
    if (!(r.header.session_id == s->id) || r.header.direction != peer_dir) {
      log_.Error("session ", s->label,
                 ": rejected a record of another session or direction");
      continue;
    }
    peer_ack = std::max(peer_ack, r.header.ack_offset);
    const int64_t lag_us =
        (now_real - static_cast<int64_t>(r.header.timestamp_ns)) / 1000;
    s->lag.Add(lag_us);
    if (lag_us > config_.max_lag_ms * 1000) {
      // Claim 12's bound is broken: say so, but not for every record.
      ++s->lag_over_count;
      const int64_t now = clock_->NowNs();
      if (now >= s->next_lag_warning_ns) {
        s->next_lag_warning_ns = now + 10'000'000'000;
        log_.Warn("session ", s->label, ": storage-path lag ", lag_us / 1000,
                  " ms is above DISKWIRE_MAX_LAG_MS=", config_.max_lag_ms, " (",
                  s->lag_over_count, " records over so far)");
      }
    }
    switch (r.header.type) {
      case storage::RecordType::kFailover:
        log_.Debug("session ", s->label, ": peer failover offset ",
                   r.header.stream_offset);
        s->peer_announced = true;
        s->peer_failover_offset = r.header.stream_offset;
        break;
      case storage::RecordType::kData: {
        const uint64_t before = s->reassembly->contiguous_end();
        absl::Status offered =
            s->reassembly->Offer(r.header.stream_offset, r.payload);
        if (!offered.ok()) {
          EndSession(s, EIO, absl::StrCat("reassembly: ", offered.message()));
          return;
        }
        const uint64_t after = s->reassembly->contiguous_end();
        if (after > before) {
          s->bytes_in_storage.fetch_add(after - before,
                                        std::memory_order_relaxed);
          if (s->first_storage_byte_ns == 0) {
            s->first_storage_byte_ns = clock_->NowNs();
            log_.Info("session ", s->label, ": first byte via storage ",
                      (s->first_storage_byte_ns - s->detected_ns) / 1'000'000,
                      " ms after the failover began (realtime_ns=",
                      clock_->RealtimeNs(), ")");
          }
        }
        break;
      }
      case storage::RecordType::kFin:
        log_.Debug("session ", s->label, ": peer FIN at ",
                   r.header.stream_offset);
        s->peer_fin = true;
        s->peer_fin_offset = r.header.stream_offset;
        break;
      case storage::RecordType::kRst:
        EndSession(s, ECONNRESET, "the peer reset the connection");
        return;
      default:
        break;
    }
  }
  if (peer_ack > s->peer_ack) {
    s->peer_ack = peer_ack;
    {
      absl::MutexLock lock(&s->send_mu);
      // Not past what the writer has taken: its DATA must stay contiguous (the
      // peer discards what it already holds).
      (void)s->ring.TrimTo(std::min(peer_ack, s->next_to_volume));
    }
    if (s->out != nullptr) s->out->RequestTrim(peer_ack);
    UpdateEventMask(s);
  }
  if (s->old_sock_open)
    DrainOldSocket(s);  // the peer's announcement may end the drain
  PumpVolumeToApp(s);
}

void EngineImpl::PumpVolumeToApp(Session* s) {
  if (s->reassembly == nullptr) return;
  if (s->eng_end < 0) {
    // The application closed the socket before the failover: what arrives is
    // dropped, as TCP drops it, and acknowledged so that the peer is never held
    // up.
    const size_t n = s->reassembly->Peek().size();
    s->reassembly->Consume(n);
    s->delivered += n;
    s->out->SubmitAck(s->delivered);
    return;
  }
  while (true) {
    absl::string_view ready = s->reassembly->Peek();
    if (ready.empty()) break;
    iovec iov{const_cast<char*>(ready.data()), ready.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = os_->SendMsg(s->eng_end, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r.ok()) {
      s->reassembly->Consume(r.value);
      s->delivered += r.value;
      continue;
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (!s->want_eng_out) {
        s->want_eng_out = true;
        UpdateEventMask(s);
      }
      break;
    }
    // The application no longer reads (it closed its end): what arrives is
    // dropped, as TCP would drop it, but it still counts as delivered so that
    // the peer is not held up.
    s->reassembly->Consume(ready.size());
    s->delivered += ready.size();
  }
  if (s->peer_fin && !s->eof_delivered && s->delivered >= s->peer_fin_offset) {
    os_->Shutdown(s->eng_end, SHUT_WR);
    s->eof_delivered = true;
    log_.Debug("session ", s->label, ": end of file delivered at ",
               s->delivered);
  }
  s->out->SubmitAck(
      s->delivered);  // the writer decides when it needs a record of its own
}

void EngineImpl::MaybeFinish(Session* s) {
  if (s->state.load() != SessionState::kStorage) return;
  bool app_gone;
  {
    absl::MutexLock lock(&s->mu);
    app_gone = s->names.empty();
  }
  bool sent_all;
  {
    absl::MutexLock lock(&s->send_mu);
    sent_all = s->fin_sent && s->peer_ack >= s->ring.head() &&
               s->out->buffered_bytes() == 0;
  }
  if (!(app_gone && sent_all && (s->eof_delivered || s->peer_fin))) return;
  EndSession(s, 0, "both directions finished");
}

void EngineImpl::HandleInbox() {
  auto inbox = recv()->TakeInbox(process_id_);
  if (!inbox.ok()) {
    log_.Warn("reading the inbox: ", inbox.status().message());
    return;
  }
  for (const std::string& problem : inbox->problems)
    log_.Warn("inbox: ", problem);
  const int64_t now = clock_->NowNs();
  for (const storage::InboxMessage& msg : inbox->messages) {
    auto m = DecodeFailover(msg.payload);
    if (!m.ok()) {
      log_.Warn("inbox message ", msg.name, ": ", m.status().message());
      continue;
    }
    unmatched_.push_back({*m, now});
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
      // moment to appear.
      if (now - since < config_.peer_timeout_ms * 1'000'000)
        keep.push_back({m, since});
      continue;
    }
    if (s->state.load() == SessionState::kDirect) {
      TriggerFailover(s.get(), "the peer announced a failover", m.from_process);
    } else if (s->peer_process.empty()) {
      s->peer_process = m.from_process;
    }
  }
  unmatched_.swap(keep);
}

void EngineImpl::CheckPeers() {
  std::vector<std::shared_ptr<Session>> storage_sessions;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, s] : sessions_) {
      if (s->state.load() == SessionState::kStorage)
        storage_sessions.push_back(s);
    }
  }
  if (storage_sessions.empty()) return;
  auto listing = recv()->ListHeartbeats();
  if (!listing.ok()) return;
  const int64_t now = clock_->NowNs();
  for (const storage::Heartbeat& hb : listing->heartbeats) {
    // Liveness is judged by our own clock: a heartbeat whose sequence moved
    // since we last looked is fresh, whatever the two hosts' clocks say.
    const std::string key =
        absl::StrCat(hb.process_id, "#", hb.sequence, "#", hb.time_ns);
    if (!peer_seen_.count(hb.process_id) || peer_seen_[hb.process_id] != key) {
      peer_seen_[hb.process_id] = key;
      peer_seen_ns_[hb.process_id] = now;
    }
  }
  for (auto& s : storage_sessions) {
    if (s->peer_process.empty()) s->peer_process = FindPeerProcess(*s);
    if (s->peer_process.empty()) continue;
    auto seen = peer_seen_ns_.find(s->peer_process);
    const int64_t since =
        seen == peer_seen_ns_.end() ? s->detected_ns : seen->second;
    if (now - std::max(since, s->detected_ns) >
        config_.peer_timeout_ms * 1'000'000) {
      EndSession(s.get(), ETIMEDOUT,
                 absl::StrCat("the peer process ", s->peer_process,
                              " stopped its heartbeat"));
    }
  }
}

void EngineImpl::PublishHeartbeat() {
  ProcessReport report;
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(
        &mu_);  // never held with a session's send_mu (lock order)
    for (auto& [key, s] : sessions_) all.push_back(s);
  }
  {
    for (auto& s : all) {
      SessionReport r;
      r.id = s->id;
      r.role = s->role;
      r.state = SessionStateName(s->state.load());
      r.local = FormatAddress(s->endpoints.local);
      r.remote = FormatAddress(s->endpoints.remote);
      {
        absl::MutexLock send_lock(&s->send_mu);
        r.sent_offset = s->ring.head();
        if (s->state.load() == SessionState::kDirect) {
          absl::MutexLock lock(
              &s->mu);  // the fd cannot be closed and reused under us
          if (!s->names.empty()) {
            auto acked =
                probe_.AckedOffset(s->names[0], s->ring.head(), s->shut_wr);
            if (acked.ok())
              s->kernel_acked.store(*acked, std::memory_order_relaxed);
          }
        }
      }
      r.bytes_out_network = std::min<uint64_t>(
          s->state.load() == SessionState::kDirect ? s->kernel_acked.load()
                                                   : s->failover_offset,
          r.sent_offset);
      r.bytes_out_storage =
          s->out != nullptr
              ? s->out->appended_offset() -
                    std::min(s->out->appended_offset(), s->failover_offset)
              : 0;
      r.bytes_in_network = s->bytes_in_network.load(std::memory_order_relaxed);
      r.bytes_in_storage = s->bytes_in_storage.load(std::memory_order_relaxed);
      r.delivered_offset = s->state.load() == SessionState::kDirect
                               ? r.bytes_in_network
                               : s->delivered;
      r.peer_ack_offset = s->peer_ack;
      r.failover_ms =
          s->first_storage_byte_ns > 0
              ? (s->first_storage_byte_ns - s->detected_ns) / 1'000'000
              : -1;
      s->lag.Fill(&r);
      report.sessions.push_back(std::move(r));
    }
  }
  absl::Status st =
      send_volume_->PublishHeartbeat(process_id_, EncodeProcessReport(report));
  if (!st.ok()) log_.Warn("publishing the heartbeat: ", st.message());
}

}  // namespace diskwire
