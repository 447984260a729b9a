// Failover: finding the peer's process, swapping the application's fd onto a
// socket pair, and announcing the offset from which this side writes its stream
// to the volume.

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/engine_impl.h"
#include "core/failover_message.h"

namespace diskwire {
namespace {

constexpr int kPairBufferBytes = 1 << 20;

}  // namespace

std::string EngineImpl::FindPeerProcess(const Session& s, bool report,
                                        int64_t* claim_ns, bool closed_too) {
  auto peers = peers_->Refresh();
  if (!peers.ok()) {
    log_.Warn("cannot list heartbeats: ", peers.status().message());
    return "";
  }
  for (const std::string& problem : (*peers)->problems())
    log_.Warn("heartbeats: ", problem);
  return PeerHolding(**peers, s, report, claim_ns, closed_too);
}

std::string EngineImpl::PeerHolding(const PeerSnapshot& peers, const Session& s,
                                    bool report, int64_t* claim_ns,
                                    bool closed_too) {
  const Role peer_role =
      s.role == Role::kClient ? Role::kServer : Role::kClient;
  std::optional<PeerSnapshot::Holder> holder =
      peers.HolderOf(s.id, peer_role, closed_too);
  if (!holder.has_value()) {
    if (report) {
      log_.Info("session ", s.label, ": none of ", peers.processes().size(),
                " heartbeats (", peers.ListedSessions(),
                " sessions) holds its other end");
    }
    return "";
  }
  if (claim_ns != nullptr) *claim_ns = holder->claim_ns;
  if (!holder->process->alive) {
    log_.Warn("session ", s.label, ": the heartbeat of its peer ",
              holder->process->id, " has not changed for ",
              (clock_->NowNs() - holder->process->last_alive_ns) / 1'000'000,
              " ms");
    return "";
  }
  return holder->process->id;
}

bool EngineImpl::YoungSessionWait(const Session& s) {
  const int64_t age_ns = clock_->NowNs() - s.adopted_ns;
  if (s.adopted_ns == 0 || age_ns >= kYoungSessionNs) return false;
  absl::SleepFor(absl::Nanoseconds(
      std::min<int64_t>(kYoungSessionNs - age_ns, 25'000'000)));
  return true;
}

int64_t EngineImpl::LastArrivalNs(Session* s, int64_t now) {
  absl::MutexLock lock(&s->mu);
  if (s->names.empty()) return now;
  auto sample = probe_.Sample(s->names[0]);
  if (!sample.ok()) return now;
  const int64_t quiet_ms =
      std::min(sample->last_ack_recv_ms, sample->last_data_recv_ms);
  // Counters of a socket that never heard from its peer are meaningless.
  if (quiet_ms > config_.peer_timeout_ms) return now;
  return now - quiet_ms * 1'000'000;
}

bool EngineImpl::TriggerFailover(Session* s, const std::string& reason,
                                 std::string peer_process, uint32_t episode) {
  if (s->dormant.load()) return false;  // another process carries it
  SessionState expected = SessionState::kDirect;
  if (!s->state.compare_exchange_strong(expected, SessionState::kFailingOver)) {
    if (IsSwapping(expected)) WaitWhileSwapping(s);
    return s->state.load() == SessionState::kStorage;
  }
  auto back_to_direct = [s]() {
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kDirect);
    s->state_changed.SignalAll();
  };
  const int64_t now = clock_->NowNs();
  if (peer_process.empty() && config_.mode != Mode::kStorage) {
    if (now < s->no_peer_until_ns) {
      back_to_direct();
      return false;
    }
    int64_t claim = 0;
    peer_process = FindPeerProcess(*s, /*report=*/false, &claim);
    // The peer's heartbeat names a new session within 50 ms of its accept
    // or connect (FinishAdoption): a young session waits for it rather than
    // take a peer that runs diskwire for one that does not.
    while (peer_process.empty() && YoungSessionWait(*s)) {
      peer_process = FindPeerProcess(*s, /*report=*/false, &claim);
    }
    if (peer_process.empty()) peer_process = FindPeerProcess(*s, true, &claim);
    s->peer_claim_ns = claim;
    if (peer_process.empty()) {
      if (!s->plain_tcp) {
        log_.Warn("session ", s->label, ": ", reason,
                  "; no live diskwire peer holds this connection: it is plain "
                  "TCP now, with the socket's own timeouts");
        UsePlainTcpTimeouts(s);
      } else {
        log_.Debug("session ", s->label, ": ", reason, "; still no peer");
      }
      s->no_peer_until_ns = now + config_.heartbeat_ms * 1'000'000;
      // Nothing to act on: the next probe judges the path afresh (a
      // connection that recovered is not failed over later for an old stall).
      s->detector.Reset();
      back_to_direct();
      return false;
    }
  }
  s->detected_ns = now;
  s->stopped_ns = LastArrivalNs(s, now);
  s->peer_process = peer_process;
  const uint32_t previous_episode = s->episode;
  s->episode = std::max(s->episode + 1, episode);
  absl::Status swapped = Swap(s);
  if (absl::IsDataLoss(swapped)) {
    // Left to TCP until this process sends or receives again, which claims
    // the session afresh.
    s->dormant.store(true);
    absl::MutexLock lock(&s->mu);
    table_.RefreshFlags(s);
  }
  if (absl::IsAborted(swapped)) {
    // Past the swap: the application learns now, not from a hang.
    EndSession(s, EIO, std::string(swapped.message()));
    return false;
  }
  if (!swapped.ok()) {
    log_.Error("session ", s->label,
               ": cannot move to storage: ", swapped.message());
    s->episode = previous_episode;
    back_to_direct();
    return false;
  }
  log_.Info("session ", s->label, " failing over to storage (", reason,
            ") at offset ", s->failover_offset, ", delivered ", s->delivered,
            ", episode ", s->episode,
            peer_process.empty() ? "" : absl::StrCat(", peer ", peer_process));
  if (!peer_process.empty()) Announce(s);
  {
    absl::MutexLock lock(&s->mu);
    s->state.store(SessionState::kStorage);
    s->state_changed.SignalAll();
  }
  uint64_t one = 1;
  os_->Write(wake_fd_, &one,
             sizeof(one));  // wake the shim's poll/select wrappers
  {
    absl::MutexLock lock(&table_.mu);
    if (std::shared_ptr<Session> shared = table_.Find(s); shared != nullptr)
      to_register_.push_back(std::move(shared));
  }
  os_->Write(kick_fd_, &one, sizeof(one));
  return true;
}

void EngineImpl::UsePlainTcpTimeouts(Session* s) {
  s->plain_tcp = true;
  if (!s->app_timeouts.has_value()) return;
  absl::MutexLock lock(&s->mu);
  const int fd = !s->names.empty() ? s->names[0] : s->linger_fd;
  if (fd < 0) return;
  absl::Status restored = probe_.RestoreTimeouts(fd, *s->app_timeouts);
  // What the application set itself since wins over what it had at first.
  for (const auto& [option, bytes] : s->sockopts) {
    os_->SetSockOpt(fd, option.first, option.second, bytes.data(),
                    bytes.size());
  }
  if (!restored.ok()) {
    log_.Warn("session ", s->label,
              ": cannot restore its timeouts: ", restored.message());
  }
}

absl::Status EngineImpl::Swap(Session* s) {
  // Both locks: no application thread sends, or receives on the socket pair,
  // while it is swapped; readers of the TCP socket take none
  // (WaitOutTcpReaders).
  absl::MutexLock send_lock(&s->send_mu);
  absl::MutexLock recv_lock(&s->recv_mu);
  std::vector<int> names;
  {
    absl::MutexLock lock(&s->mu);
    names = s->names;
  }
  int old_fd;
  if (names.empty()) {
    // The application closed the socket while the peer still lacked some of its
    // bytes: the engine kept it (Close), and only the stream's end travels on;
    // no socket pair is needed.
    if (s->linger_fd < 0) {
      return absl::FailedPreconditionError("the application closed the socket");
    }
    old_fd = s->linger_fd;
    s->linger_fd = -1;
  } else {
    SysResult old = os_->Fcntl(names[0], F_DUPFD_CLOEXEC, 0);
    if (!old.ok())
      return absl::ErrnoToStatus(old.error, "keeping the TCP socket");
    old_fd = static_cast<int>(old.value);
  }
  // Gives the old socket back (a failure before the swap): the application
  // goes on with it.
  auto keep_old = [&] {
    if (names.empty())
      s->linger_fd = old_fd;
    else
      os_->Close(old_fd);
  };
  // Everything that can fail comes before waking a reader, which shuts the
  // socket's read side for good.
  int pair[2] = {-1, -1};
  if (!names.empty()) {
    absl::Status made = MakeSocketPair(pair);
    if (!made.ok()) {
      keep_old();
      return made;
    }
  }
  auto sample = probe_.Sample(old_fd);
  if (sample.ok()) {
    const bool foreign_bytes =
        s->maybe_shared.load() && s->resumes.load() == 0 &&
        sample->WrittenBytes(s->role == Role::kClient, s->shut_wr) !=
            s->sent_to_socket;
    if (foreign_bytes ||
        sample->AckedOffset(s->sent_to_socket, s->shut_wr) < s->ring.tail()) {
      // Another process (a child that shares the socket) wrote bytes this
      // ring does not hold: no exact failover is possible.
      for (int fd : pair) {
        if (fd >= 0) os_->Close(fd);
      }
      keep_old();
      return absl::DataLossError(
          "another process that shares the socket wrote bytes the peer may "
          "lack and this process does not hold");
    }
  }
  // The volume can fail too; past this point there is no way back to the TCP
  // socket.
  auto channel = OpenMyChannel(*s);
  if (!channel.ok()) {
    for (int fd : pair) {
      if (fd >= 0) os_->Close(fd);
    }
    keep_old();
    return channel.status();
  }
  // What a reader inside a receive takes belongs to the application: the
  // sample that says what it was delivered comes after them. Always a new
  // one: a reader may have left since the first.
  WaitOutTcpReaders(s, old_fd);
  sample = probe_.Sample(old_fd);
  // Where each direction stands, read from the old socket before anything else
  // moves.
  uint64_t failover_offset = s->ring.tail();
  uint64_t delivered = 0;
  if (sample.ok()) {
    // Bytes of the backlog a resume left unsent are not on the socket.
    failover_offset = std::max(
        s->ring.tail(), sample->AckedOffset(s->sent_to_socket, s->shut_wr));
    failover_offset = std::min(failover_offset, s->sent_to_socket);
    delivered = sample->delivered() + s->in_adjust;
    if (sample->state == TCP_CLOSE && sample->bytes_received > sample->inq) {
      // The probe cannot see a FIN in TCP_CLOSE; a FIN counts one in
      // bytes_received.
      delivered = sample->bytes_received - sample->inq -
                  (storage_path_.OrderlyClose(s, old_fd) ? 1 : 0) +
                  s->in_adjust;
    }
  } else {
    log_.Warn("session ", s->label, ": cannot read TCP_INFO at failover (",
              sample.status().message(),
              "); resending everything the ring holds");
  }
  // Before the swap: from the moment an fd names the pair, getpeername() and
  // getsockname() must answer with the connection's addresses, not the
  // pair's (an application woken by the swap asks at once).
  s->generation.fetch_add(1);
  if (!names.empty()) PutSocketPair(s, names, pair);
  // The old socket's file description is now the engine's alone: the loop reads
  // it without blocking.
  os_->Fcntl(old_fd, F_SETFL, O_NONBLOCK);
  // However it ends — our close, or the process's exit — the engine's close of
  // the old socket is a reset, never a FIN: an orderly FIN there is the peer
  // application's, always.
  const linger abortive{1, 0};
  os_->SetSockOpt(old_fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
  s->leg.old_sock = old_fd;
  s->leg.old_sock_open = true;
  {
    absl::MutexLock lock(&s->mu);
    s->old_sock_for_app = old_fd;
  }
  private_[s->leg.old_sock].store(1, std::memory_order_release);
  s->on_tcp = false;
  // A backlog still unsent and a FIN still owed travel on the volume instead.
  s->leg.app_wrote_eof = s->shut_wr || s->fin_owed;
  s->fin_owed = false;
  s->leg.old_read_offset = delivered;
  absl::Status started =
      StartStoragePath(s, failover_offset, delivered, std::move(*channel));
  if (!started.ok()) {
    // The application's fd names the pair and the old socket's read side may
    // be shut: the session cannot go back to TCP.
    return absl::AbortedError(
        absl::StrCat("the volume failed after the swap: ", started.message()));
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::InstallSocketPair(Session* s,
                                           const std::vector<int>& names) {
  int pair[2];
  absl::Status made = MakeSocketPair(pair);
  if (!made.ok()) return made;
  PutSocketPair(s, names, pair);
  return absl::OkStatus();
}

absl::Status EngineImpl::MakeSocketPair(int pair[2]) {
  SysResult made =
      os_->SocketPair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
  if (!made.ok()) return absl::ErrnoToStatus(made.error, "socketpair");
  for (int i = 0; i < 2; ++i) {
    os_->SetSockOpt(pair[i], SOL_SOCKET, SO_SNDBUF, &kPairBufferBytes,
                    sizeof(kPairBufferBytes));
    os_->SetSockOpt(pair[i], SOL_SOCKET, SO_RCVBUF, &kPairBufferBytes,
                    sizeof(kPairBufferBytes));
  }
  os_->Fcntl(pair[1], F_SETFL, O_NONBLOCK);
  return absl::OkStatus();
}

void EngineImpl::PutSocketPair(Session* s, const std::vector<int>& names,
                               const int pair[2]) {
  const int status_flags =
      static_cast<int>(os_->Fcntl(names[0], F_GETFL, 0).value);
  CopyTimeouts(names[0], pair[0]);
  ReplaceFile(s, names, pair[0]);
  // File status flags belong to the open file description, which every name now
  // shares.
  os_->Fcntl(names[0], F_SETFL, status_flags & (O_NONBLOCK | O_APPEND));
  s->leg.app_end = pair[0];
  s->leg.eng_end = pair[1];
  private_[s->leg.app_end].store(1, std::memory_order_release);
  private_[s->leg.eng_end].store(1, std::memory_order_release);
}

void EngineImpl::CopyTimeouts(int from, int to) {
  for (int option : {SO_RCVTIMEO, SO_SNDTIMEO}) {
    timeval tv{};
    socklen_t len = sizeof(tv);
    if (os_->GetSockOpt(from, SOL_SOCKET, option, &tv, &len).ok()) {
      os_->SetSockOpt(to, SOL_SOCKET, option, &tv, len);
    }
  }
}

void EngineImpl::WaitOutTcpReaders(Session* s, int fd) {
  // A reader with bytes to take, or on a non-blocking socket, is out within
  // microseconds; only one waiting in the kernel for bytes needs waking.
  const absl::Time kick_at = absl::Now() + absl::Milliseconds(2);
  while (s->readers_on_tcp.load() > 0) {
    if (!s->leg.old_read_shut && absl::Now() >= kick_at) {
      os_->Shutdown(fd, SHUT_RD);
      s->leg.old_read_shut = true;
      log_.Debug("session ", s->label,
                 ": woke a receive blocked on the TCP socket");
    }
    absl::SleepFor(absl::Microseconds(50));  // a reader leaving the kernel
  }
}

void EngineImpl::ReplaceFile(Session* s, const std::vector<int>& names,
                             int fd_with_file) {
  absl::MutexLock lock(&table_.mu);
  for (int fd : names) {
    // epoll keys registrations on (fd, file): drop them while fd still names
    // the old file, so that its events never reach the application, and
    // re-add them after.
    const std::map<int, epoll_event>* regs = table_.EpollRegistrations(fd);
    if (regs != nullptr) {
      for (const auto& [epfd, ev] : *regs)
        os_->EpollCtl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    }
    const int fd_flags = static_cast<int>(os_->Fcntl(fd, F_GETFD, 0).value);
    SysResult d =
        os_->Dup3(fd_with_file, fd, (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    if (!d.ok())
      log_.Error("session ", s->label, ": dup3 failed: ", strerror(d.error));
    if (regs != nullptr) {
      for (const auto& [epfd, ev] : *regs) {
        epoll_event copy = ev;
        os_->EpollCtl(epfd, EPOLL_CTL_ADD, fd, &copy);
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<storage::ChannelWriter>>
EngineImpl::OpenMyChannel(const Session& s) {
  const std::string mine = MyChannel(s);
  // A channel of the same name left by an earlier connection with the same
  // endpoints is stale: this side is its only writer.
  absl::Status removed = send_volume_->RemoveChannel(mine);
  if (!removed.ok()) return removed;
  storage::WriterOptions options;
  options.durability = config_.durability == Durability::kBatch
                           ? storage::Durability::kEveryBatch
                       : config_.durability == Durability::kInterval
                           ? storage::Durability::kInterval
                           : storage::Durability::kNone;
  options.sync_interval = absl::Milliseconds(config_.fsync_interval_ms);
  // Space comes back a whole segment at a time, once the peer has every byte
  // in it: segments of a quarter of the replay cap keep a channel's footprint
  // near the bytes it must hold (at most the cap, plus one segment).
  options.segment_bytes = std::clamp<uint64_t>(config_.replay_cap / 4, 1 << 20,
                                               options.segment_bytes);
  return send_volume_->OpenWriter(mine, options);
}

absl::Status EngineImpl::StartStoragePath(
    Session* s, uint64_t failover_offset, uint64_t delivered,
    std::unique_ptr<storage::ChannelWriter> channel) {
  s->failover_offset = failover_offset;
  s->leg.next_to_volume = failover_offset;
  s->delivered = delivered;
  // The peer writes to the volume from its failover offset, which may lie a
  // whole receive queue ahead of what this side delivered (bytes our kernel
  // acknowledged, still to be drained from the old socket), and up to its
  // replay cap beyond that; twice ours leaves room for a peer configured
  // larger.
  size_t window = std::max<size_t>(Reassembly::kDefaultWindow,
                                   2 * static_cast<size_t>(config_.replay_cap));
  if (s->leg.old_sock_open) {
    int rcvbuf = 0;
    socklen_t len = sizeof(rcvbuf);
    if (os_->GetSockOpt(s->leg.old_sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len)
            .ok() &&
        rcvbuf > 0) {
      window += static_cast<size_t>(rcvbuf);
    }
  }
  s->leg.reassembly = std::make_unique<Reassembly>(delivered, window);
  const std::string theirs = PeerChannel(*s);
  if (channel == nullptr) {
    auto opened = OpenMyChannel(*s);
    if (!opened.ok()) return opened.status();
    channel = std::move(*opened);
  }
  s->leg.channel = std::move(channel);
  if (PeerKnown(*s)) {
    auto reader = recv()->OpenReader(theirs, delivered);
    if (!reader.ok()) return reader.status();
    s->leg.reader = std::move(*reader);
  }  // else: opened once the peer is known (OpenPeerReader)
  s->leg.out =
      writer_->AddChannel(s->id, SendDirection(s->role), s->leg.channel.get());
  if (config_.durability == Durability::kInterval)
    s->leg.out->SetIdleSync(config_.fsync_interval_ms * 1'000'000);
  s->leg.out->SetRoomCallback([this, owed = s->leg.pump_owed] {
    // Buffer room again: the loop resumes reading this session's pair.
    owed->store(true, std::memory_order_release);
    uint64_t one = 1;
    os_->Write(kick_fd_, &one, sizeof(one));
  });
  s->leg.out->SubmitAck(storage_path_.ConsumedOffset(s));
  absl::Status announced = s->leg.out->SubmitControl(
      storage::RecordType::kFailover, failover_offset);
  if (!announced.ok()) return announced;
  return absl::OkStatus();
}

bool EngineImpl::PeerKnown(const Session& s) {
  return !s.peer_process.empty() && s.peer_claim_ns != 0;
}

void EngineImpl::OpenPeerReader(Session* s) {
  if (s->leg.reader != nullptr || s->leg.reassembly == nullptr ||
      !PeerKnown(*s) || s->state.load() != SessionState::kStorage) {
    return;
  }
  const std::string theirs = PeerChannel(*s);
  log_.Debug("session ", s->label, ": reading ", theirs, " of ",
             s->peer_process);
  auto reader = recv()->OpenReader(theirs, s->leg.reassembly->contiguous_end());
  if (!reader.ok()) {
    log_.Error("session ", s->label, ": cannot read ", theirs, ": ",
               reader.status().message());
    return;
  }
  s->leg.reader = std::move(*reader);
  s->leg.peer_channel_gone_ns = 0;
  if (watcher_ != nullptr) {
    absl::Status w = watcher_->Watch(theirs);
    if (!w.ok()) log_.Warn("cannot watch ", theirs, ": ", w.message());
  }
  storage_path_.ReadPeerChannel(s);
}

void EngineImpl::Announce(Session* s) {
  FailoverMessage m;
  m.session = s->id;
  m.sender_role = s->role;
  m.failover_offset = s->failover_offset;
  m.delivered = s->delivered;
  m.from_process = process_id_;
  m.episode = s->episode;
  m.claim = s->claim_ns.load();
  m.to_claim = s->peer_claim_ns;
  const std::string name = absl::StrCat("fo-", SessionIdHex(s->id), "-",
                                        s->role == Role::kClient ? "c" : "s",
                                        "-", clock_->RealtimeNs());
  absl::Status posted =
      send_volume_->PostToInbox(s->peer_process, name, EncodeFailover(m));
  if (!posted.ok()) {
    log_.Error("session ", s->label, ": cannot announce the failover to ",
               s->peer_process, ": ", posted.message());
  }
}

void EngineImpl::EndSession(Session* s, int error, const std::string& why) {
  {
    absl::MutexLock lock(&s->mu);
    if (s->state.load() == SessionState::kClosed) return;
    s->error = error;
    s->closed_ns = clock_->NowNs();
    s->state.store(SessionState::kClosed);
    s->state_changed.SignalAll();
  }
  if (error != 0) {
    log_.Warn("session ", s->label, " ends: ", why, " (", strerror(error), ")");
  } else {
    log_.Info("session ", s->label, " closed: ", why);
  }
  if (s->leg.eng_end >= 0) {
    // The application's blocked reads see end of file and its writes EPIPE; the
    // hooks turn both into `error`.
    os_->Shutdown(s->leg.eng_end, SHUT_RDWR);
  }
}

}  // namespace diskwire
