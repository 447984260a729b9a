// Failover: finding the peer's process, deciding to move (the swap itself is
// in swap.cc), and announcing the offset from which this side writes its
// stream to the volume.

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/engine_impl.h"
#include "core/failover_message.h"

namespace diskwire {
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
                                 std::string peer_process, uint32_t episode,
                                 const char* cause) {
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
  s->failover_cause = cause;
  // In storage mode the network never carried the stream: no outage to time.
  s->stopped_ns = config_.mode == Mode::kStorage ? 0 : LastArrivalNs(s, now);
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
  s->leg.parked.clear();  // the last reader's
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
  m.cause = s->failover_cause;
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
    // hooks turn both into `error` (reads not after the peer's own end of
    // file: Session::eof_queued).
    os_->Shutdown(s->leg.eng_end, SHUT_RDWR);
  }
}

}  // namespace diskwire
