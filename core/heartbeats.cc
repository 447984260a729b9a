// The heartbeats, from the engine loop: this process's own (PublishHeartbeat),
// and what the others' tell it — a peer that stopped (CheckPeers), a session
// another process now claims, channels nobody holds any more, dead processes
// to prune, a node name used twice.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/engine_impl.h"
#include "core/version.h"
#include "core/volume_prune.h"

namespace diskwire {

void EngineImpl::CheckPeers() {
  std::vector<std::shared_ptr<Session>> storage_sessions;
  bool shared = false;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->state.load() == SessionState::kStorage)
        storage_sessions.push_back(s);
      shared = shared || (s->maybe_shared.load() && !s->dormant.load());
    });
  }
  if (storage_sessions.empty() && !shared && retired_.empty()) return;
  auto refreshed = peers_->Refresh();
  if (!refreshed.ok()) return;
  const PeerSnapshot& peers = **refreshed;
  if (!retired_.empty()) RemoveRetired(peers);
  if (shared) YieldToNewerClaims(peers);
  const int64_t now = clock_->NowNs();
  for (auto& s : storage_sessions) {
    if (s->peer_process.empty()) {
      // A session that failed over before its peer's heartbeat listed it (a
      // young connection, storage mode): the peer learns of it now.
      s->peer_process = PeerHolding(peers, *s, /*report=*/false,
                                    &s->peer_claim_ns, /*closed_too=*/true);
      if (s->peer_process.empty()) {
        // Nobody takes it: a peer without diskwire, or one that died before
        // its heartbeat named the session. A client whose server's listener
        // is still advertised waits for the accept, as TCP's queue would.
        if (now - s->detected_ns > config_.peer_timeout_ms * 1'000'000 &&
            !(s->role == Role::kClient && ListenerAlive(s->endpoints.remote))) {
          s->plain_peer = true;
          EndSession(s.get(), ETIMEDOUT,
                     absl::StrCat("no diskwire peer took the connection in ",
                                  config_.peer_timeout_ms, " ms"));
          // Now, before the application's exit closes it with a reset.
          if (s->leg.old_sock_open) storage_path_.CloseOldSocket(s.get());
        }
        continue;
      }
      Announce(s.get());
      OpenPeerReader(s.get());
    } else if (s->peer_claim_ns == 0) {
      // Its process is known (the listener's, for a connection opened over
      // the volume) but not its claim, which names its channel: the
      // heartbeat that lists the session has it, should the announcement
      // be late.
      int64_t claim = 0;
      const std::string holder =
          PeerHolding(peers, *s, /*report=*/false, &claim, /*closed_too=*/true);
      if (!holder.empty()) {
        s->peer_process = holder;
        s->peer_claim_ns = claim;
        OpenPeerReader(s.get());
      }
    }
    if (s->leg.reader == nullptr && s->leg.peer_channel_gone_ns > 0 &&
        now - s->leg.peer_channel_gone_ns >
            config_.peer_timeout_ms * 1'000'000) {
      storage_path_.ResetOverStorage(
          s.get(), EIO,
          absl::StrCat("the peer removed its channel and named no "
                       "next one in ",
                       config_.peer_timeout_ms, " ms"));
      continue;
    }
    // Heard of last: the peer's heartbeat, the session's failover, or a
    // record read from the peer's channel.
    const int64_t since = peers.LastAliveNs(s->peer_process).value_or(0);
    if (now - std::max({since, s->detected_ns, s->leg.peer_read_ns}) >
        config_.peer_timeout_ms * 1'000'000) {
      // What the peer wrote before it went outlives it, as a kernel's receive
      // queue does: it is delivered first (its end of file too), however
      // slowly the application reads.
      const bool undelivered =
          (s->leg.peer_fin && !s->leg.eof_delivered) ||
          (s->leg.reassembly != nullptr &&
           s->leg.reassembly->contiguous_end() > s->delivered);
      if (undelivered) continue;
      if (s->leg.eof_delivered) {
        // It finished its stream, then left, as a forked server's child
        // does: no failure. As from a TCP peer that closed and exited, reads
        // end with its end of file and writes fail with EPIPE (the pair's).
        EndSession(s.get(), 0,
                   absl::StrCat("the peer process ", s->peer_process,
                                " left after its end of file"));
        continue;
      }
      EndSession(s.get(), ETIMEDOUT,
                 absl::StrCat("the peer process ", s->peer_process,
                              " stopped its heartbeat"));
    }
  }
}

void EngineImpl::RemoveRetired(const PeerSnapshot& peers) {
  std::vector<Retired> keep;
  for (Retired& r : retired_) {
    const PeerProcess* peer = peers.Find(r.peer_process);
    bool held = false;
    if (peer != nullptr && peer->alive) {
      if (!peer->report.has_value()) {
        held = true;  // cannot tell: keep the channel
      } else {
        for (const SessionReport& sr : peer->report->sessions)
          held = held || (sr.id == r.session && sr.role == r.peer_role);
      }
    }
    if (held) {
      keep.push_back(std::move(r));
      continue;
    }
    absl::Status removed = send_volume_->RemoveChannel(r.channel);
    if (!removed.ok()) {
      log_.Warn("cannot remove the channel ", r.channel, ": ",
                removed.message());
    } else {
      log_.Debug("removed the channel ", r.channel,
                 ": its reader let go of the session");
    }
  }
  retired_.swap(keep);
}

void EngineImpl::YieldToNewerClaims(const PeerSnapshot& peers) {
  std::vector<std::shared_ptr<Session>> shared;
  {
    absl::MutexLock lock(&table_.mu);
    table_.ForEach([&](const std::shared_ptr<Session>& s) {
      if (s->maybe_shared.load() && !s->dormant.load() &&
          s->state.load() == SessionState::kDirect)
        shared.push_back(s);
    });
  }
  for (const PeerProcess& p : peers.processes()) {
    if (p.id == process_id_ || !p.report.has_value()) continue;
    for (const SessionReport& r : p.report->sessions) {
      for (auto& s : shared) {
        if (r.id == s->id && r.role == s->role && r.state != "CLOSED" &&
            r.claim_ns > s->claim_ns.load() && !s->dormant.load()) {
          s->dormant.store(true);
          {
            absl::MutexLock lock(&s->mu);
            table_.RefreshFlags(s.get());
          }
          log_.Info("session ", s->label, ": process ", p.id,
                    " uses it now; this one goes dormant until it uses it");
        }
      }
    }
  }
}

void EngineImpl::PruneDeadProcesses() {
  const int64_t stale_after_ms =
      std::max<int64_t>(60'000, 10 * config_.peer_timeout_ms);
  auto report = PruneVolume(config_.send_volume, *send_volume_,
                            clock_->RealtimeNs(), stale_after_ms);
  if (!report.ok()) {
    log_.Warn("pruning the volume: ", report.status().message());
    return;
  }
  if (!report->removed.empty()) {
    log_.Info("pruned ", report->removed.size(),
              " leftovers of processes with no live heartbeat, untouched for "
              "over ",
              stale_after_ms / 1000, " s (first: ", report->removed[0], ")");
  }
  for (const std::string& problem : report->problems)
    log_.Debug("pruning: ", problem);
}

void EngineImpl::CheckNodeName(const PeerSnapshot& peers) {
  if (host_.key.empty()) return;
  const std::string prefix = absl::StrCat(config_.node, ".");
  for (const PeerProcess& p : peers.processes()) {
    if (!absl::StartsWith(p.id, prefix) || p.id == process_id_ || !p.alive ||
        !p.report.has_value()) {
      continue;
    }
    const ProcessReport& report = *p.report;
    if (report.host.empty() || report.host == host_.key ||
        !name_clashes_.insert(report.host).second) {
      continue;
    }
    log_.Error("node name \"", config_.node,
               "\" is used by two hosts: this one (addresses ",
               host_.addresses.empty() ? "unknown" : host_.addresses,
               ") and the host of process ", p.id, " (addresses ",
               report.addresses.empty() ? "unknown" : report.addresses,
               "); give each host its own DISKWIRE_NODE, or failovers "
               "between them go to the wrong process");
  }
}

void EngineImpl::PublishHeartbeat() {
  ProcessReport report;
  std::vector<std::shared_ptr<Session>> all;
  uint64_t snapshot;
  {
    // Never held with a session's send_mu (lock order).
    absl::MutexLock lock(&table_.mu);
    snapshot = ++heartbeat_snapshots_;
    all = table_.Snapshot();
  }
  {
    for (auto& s : all) {
      if (s->dormant.load()) continue;
      SessionReport r;
      r.id = s->id;
      r.claim_ns = s->claim_ns.load();
      r.role = s->role;
      r.state = SessionStateName(s->state.load());
      r.local = FormatAddress(s->endpoints.local);
      r.remote = FormatAddress(s->endpoints.remote);
      {
        FutexLockHolder send_lock(&s->send_mu);
        r.sent_offset = s->ring.head();
        if (s->state.load() == SessionState::kDirect) {
          absl::MutexLock lock(
              &s->mu);  // the fd cannot be closed and reused under us
          if (!s->names.empty()) {
            auto acked =
                probe_.AckedOffset(s->names[0], s->sent_to_socket, s->shut_wr);
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
          s->leg.out != nullptr
              ? s->leg.out->appended_offset() -
                    std::min(s->leg.out->appended_offset(), s->failover_offset)
              : 0;
      r.bytes_in_network = s->bytes_in_network.load(std::memory_order_relaxed);
      r.bytes_in_storage = s->bytes_in_storage.load(std::memory_order_relaxed);
      r.delivered_offset = s->state.load() == SessionState::kDirect
                               ? r.bytes_in_network
                               : s->delivered;
      r.peer_ack_offset = s->peer_ack;
      r.failover_ms =
          s->leg.first_storage_byte_ns > 0
              ? (s->leg.first_storage_byte_ns -
                 (s->stopped_ns > 0 ? s->stopped_ns : s->detected_ns)) /
                    1'000'000
              : -1;
      s->lag.Fill(&r);
      r.resumes = s->resumes.load(std::memory_order_relaxed);
      if (s->leg.out != nullptr) {
        const absl::Status written = s->leg.out->status();
        if (!written.ok()) {
          r.problem = absl::IsResourceExhausted(written)  ? "volume-full"
                      : absl::IsDeadlineExceeded(written) ? "volume-stalled"
                                                          : "volume-error";
        }
      }
      report.sessions.push_back(std::move(r));
    }
  }
  for (const ListenAddress& l : listeners_.Current())
    report.listeners.push_back(FormatListenAddress(l));
  if (relay_started_.load(std::memory_order_acquire)) relay_->Fill(&report.udp);
  report.resume_port = resume_port_;
  report.resume_nonce = resume_nonce_;
  report.host = host_.key;
  report.addresses = host_.addresses;
  report.version = kVersion;
  report.rejected_records = rejected_records_.load(std::memory_order_relaxed);
  absl::Status st =
      send_volume_->PublishHeartbeat(process_id_, EncodeProcessReport(report));
  if (!st.ok()) log_.Warn("publishing the heartbeat: ", st.message());
  absl::MutexLock lock(&published_mu_);
  heartbeat_published_ = std::max(heartbeat_published_, snapshot);
}

void EngineImpl::AwaitHeartbeatAfter(uint64_t taken) {
  if (!started_.load() || stopping_.load() || kick_fd_ < 0) return;
  heartbeat_due_.store(true, std::memory_order_release);
  uint64_t one = 1;
  os_->Write(kick_fd_, &one, sizeof(one));
  struct Wanted {
    const uint64_t* published;
    uint64_t after;
  };
  absl::MutexLock lock(&published_mu_);
  Wanted wanted{&heartbeat_published_, taken};
  published_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Wanted* w) { return *w->published > w->after; }, &wanted),
      absl::Milliseconds(kPublishWaitMs));
}

}  // namespace diskwire
