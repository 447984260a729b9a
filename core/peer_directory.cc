#include "core/peer_directory.h"

#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/fork_mutex.h"
#include "core/listeners.h"

namespace diskwire {

PeerSnapshot::PeerSnapshot(storage::HeartbeatListing listing,
                           std::vector<PeerProcess> processes,
                           std::vector<std::string> problems,
                           std::map<std::string, int64_t> unlisted_alive_ns)
    : listing_(std::move(listing)),
      processes_(std::move(processes)),
      problems_(std::move(problems)),
      unlisted_alive_ns_(unlisted_alive_ns.begin(), unlisted_alive_ns.end()) {}

const PeerProcess* PeerSnapshot::Find(absl::string_view id) const {
  for (const PeerProcess& p : processes_) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

std::optional<int64_t> PeerSnapshot::LastAliveNs(absl::string_view id) const {
  if (const PeerProcess* p = Find(id)) return p->last_alive_ns;
  auto it = unlisted_alive_ns_.find(id);
  if (it == unlisted_alive_ns_.end()) return std::nullopt;
  return it->second;
}

std::optional<PeerSnapshot::Holder> PeerSnapshot::HolderOf(
    const SessionId& id, Role role, bool closed_too) const {
  std::optional<Holder> best;
  auto rank = [](bool open, int64_t claim, uint64_t time) {
    return std::tuple(open, claim, time);
  };
  std::tuple<bool, int64_t, uint64_t> best_rank(false, -1, 0);
  for (const PeerProcess& p : processes_) {
    if (!p.report.has_value()) continue;
    for (const SessionReport& r : p.report->sessions) {
      const bool open = r.state != "CLOSED";
      if (r.id != id || r.role != role || !(open || closed_too)) continue;
      if (best.has_value() && rank(open, r.claim_ns, p.time_ns) < best_rank)
        continue;
      best = Holder{&p, r.claim_ns};
      best_rank = rank(open, r.claim_ns, p.time_ns);
    }
  }
  return best;
}

size_t PeerSnapshot::ListedSessions() const {
  size_t n = 0;
  for (const PeerProcess& p : processes_) {
    if (p.report.has_value()) n += p.report->sessions.size();
  }
  return n;
}

const PeerProcess* PeerSnapshot::ListenerFor(
    const sockaddr_storage& dest) const {
  const PeerProcess* best = nullptr;
  for (const PeerProcess& p : processes_) {
    if (!p.report.has_value() || p.report->listeners.empty()) continue;
    const std::vector<MappedAddress> host =
        ParseHostAddresses(p.report->addresses);
    for (const std::string& text : p.report->listeners) {
      auto listener = ParseListenAddress(text);
      if (!listener.ok() || !ListenerAccepts(*listener, host, dest)) continue;
      if (best == nullptr || (p.alive && !best->alive) ||
          (p.alive == best->alive && p.time_ns > best->time_ns)) {
        best = &p;
      }
      break;
    }
  }
  return best;
}

PeerDirectory::PeerDirectory(storage::Volume* volume, const Clock* clock,
                             int64_t peer_timeout_ms)
    : volume_(volume), clock_(clock), peer_timeout_ms_(peer_timeout_ms) {}

absl::StatusOr<std::shared_ptr<const PeerSnapshot>> PeerDirectory::Refresh() {
  absl::MutexLock refreshing(&refresh_mu_);
  absl::StatusOr<storage::HeartbeatListing> listing = volume_->ListHeartbeats();
  if (!listing.ok()) return listing.status();
  std::vector<PeerProcess> processes;
  std::vector<std::string> problems = listing->problems;
  processes.reserve(listing->heartbeats.size());
  for (const storage::Heartbeat& hb : listing->heartbeats) {
    PeerProcess p;
    p.id = hb.process_id;
    p.time_ns = hb.time_ns;
    absl::StatusOr<ProcessReport> report = DecodeProcessReport(hb.payload);
    if (report.ok()) {
      p.report = std::move(*report);
    } else {
      problems.push_back(absl::StrCat("heartbeat of ", hb.process_id, ": ",
                                      report.status().message()));
    }
    processes.push_back(std::move(p));
  }
  std::map<std::string, int64_t> unlisted;
  {
    absl::MutexLock lock(&mu_);
    std::map<std::string, std::unique_ptr<PeerLiveness>> still;
    for (size_t i = 0; i < processes.size(); ++i) {
      PeerProcess& p = processes[i];
      std::unique_ptr<PeerLiveness>& liveness = still[p.id];
      if (liveness == nullptr) {
        auto known = liveness_.find(p.id);
        liveness = known != liveness_.end() ? std::move(known->second)
                                            : std::make_unique<PeerLiveness>(
                                                  clock_, peer_timeout_ms_);
      }
      const storage::Heartbeat& hb = listing->heartbeats[i];
      liveness->OnHeartbeat(hb.sequence, static_cast<int64_t>(hb.time_ns));
      p.alive = liveness->state() == PeerLiveness::State::kFresh;
      p.last_alive_ns = liveness->last_alive_ns();
    }
    // A process whose heartbeat this read missed is remembered until it
    // would be stale anyway.
    for (auto& [id, liveness] : liveness_) {
      if (liveness == nullptr || still.count(id) ||
          liveness->state() != PeerLiveness::State::kFresh) {
        continue;
      }
      unlisted[id] = liveness->last_alive_ns();
      still[id] = std::move(liveness);
    }
    liveness_ = std::move(still);
  }
  auto snapshot = std::make_shared<const PeerSnapshot>(
      std::move(*listing), std::move(processes), std::move(problems),
      std::move(unlisted));
  absl::MutexLock lock(&mu_);
  latest_ = snapshot;
  return snapshot;
}

void PeerDirectory::BeforeFork() { mu_.Lock(); }
void PeerDirectory::AfterForkParent() { mu_.Unlock(); }
void PeerDirectory::AfterForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  RenewInForkChild(&mu_);
  RenewInForkChild(&refresh_mu_);
}

std::shared_ptr<const PeerSnapshot> PeerDirectory::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

}  // namespace diskwire
