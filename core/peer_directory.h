// File: core/peer_directory.h
// What the other diskwire processes' heartbeats on the volume say of them:
// which are alive, which holds the other end of a session, which advertises a
// listener that a connection would reach, and where each accepts resume
// connections. One liveness rule serves every caller (PeerLiveness, core/
// failure_detector.h): a heartbeat that changed since the last read proves
// its process alive by this host's clock.
//
// Each Refresh() reads the heartbeats once and returns an immutable
// PeerSnapshot that the caller queries as often as it likes.
//
// Thread-safe: the engine loop refreshes it at every check of its sessions,
// application threads (a failover, a connect) when they need the newest word.

#ifndef DISKWIRE_CORE_PEER_DIRECTORY_H_
#define DISKWIRE_CORE_PEER_DIRECTORY_H_

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/failure_detector.h"
#include "core/identity.h"
#include "core/session_report.h"
#include "storage/volume.h"

namespace diskwire {

// One process's heartbeat, as read at a refresh.
struct PeerProcess {
  std::string id;        // its process id
  uint64_t time_ns = 0;  // CLOCK_REALTIME of its heartbeat, by its clock
  // What its heartbeat says; nullopt when the payload is malformed (the
  // snapshot's problems say why).
  std::optional<ProcessReport> report;
  bool alive = false;
  int64_t last_alive_ns = 0;  // monotonic, this host's clock
};

class PeerSnapshot {
 public:
  PeerSnapshot(storage::HeartbeatListing listing,
               std::vector<PeerProcess> processes,
               std::vector<std::string> problems,
               std::map<std::string, int64_t> unlisted_alive_ns = {});

  // The heartbeats as listed, for those that read more than a report.
  const storage::HeartbeatListing& listing() const { return listing_; }
  const std::vector<PeerProcess>& processes() const { return processes_; }
  // Foreign or corrupt heartbeats and malformed reports, one line each.
  const std::vector<std::string>& problems() const { return problems_; }
  // nullptr when `id` has no heartbeat.
  const PeerProcess* Find(absl::string_view id) const;
  // When `id` was last seen alive (monotonic): from its heartbeat, or, for a
  // process whose heartbeat was not listed this time (one read may miss a
  // heartbeat being rewritten), from an earlier read within the peer
  // timeout. nullopt when neither knows it.
  std::optional<int64_t> LastAliveNs(absl::string_view id) const;

  // The process holding the `role` end of session `id`: of two that list it
  // (a forking server and its child), the one that still carries it, then
  // the newer claim, then the newer heartbeat. A process that closed its end
  // counts only with `closed_too` (its channel holds its last records).
  struct Holder {
    const PeerProcess* process = nullptr;
    int64_t claim_ns = 0;  // its claim of the session
  };
  std::optional<Holder> HolderOf(const SessionId& id, Role role,
                                 bool closed_too) const;
  // How many sessions the heartbeats list, for a report of a failed lookup.
  size_t ListedSessions() const;

  // The process whose advertised listener a connection to `dest` would
  // reach: a live one first, then the freshest heartbeat.
  const PeerProcess* ListenerFor(const sockaddr_storage& dest) const;

 private:
  storage::HeartbeatListing listing_;
  std::vector<PeerProcess> processes_;
  std::vector<std::string> problems_;
  std::map<std::string, int64_t, std::less<>> unlisted_alive_ns_;
};

class PeerDirectory {
 public:
  // REQUIRES: volume and clock outlive this; peer_timeout_ms > 0.
  PeerDirectory(storage::Volume* volume, const Clock* clock,
                int64_t peer_timeout_ms);

  // Reads every heartbeat again. Errors: the volume's, when it cannot list.
  absl::StatusOr<std::shared_ptr<const PeerSnapshot>> Refresh();
  // What the last successful Refresh() read; nullptr before it.
  std::shared_ptr<const PeerSnapshot> Latest() const;

  // fork(): what the directory holds is whole across it (a refresh, which
  // reads the volume, may be under way in another thread; the child's is
  // forgotten).
  void BeforeFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(mu_);
  void AfterForkParent() ABSL_UNLOCK_FUNCTION(mu_);
  void AfterForkChild() ABSL_UNLOCK_FUNCTION(mu_);

 private:
  storage::Volume* const volume_;
  const Clock* const clock_;
  const int64_t peer_timeout_ms_;
  // One refresh at a time: a listing read before another must not be judged
  // after it (its older beat would look like a change).
  absl::Mutex refresh_mu_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const PeerSnapshot> latest_ ABSL_GUARDED_BY(mu_);
  // Per process id; forgotten a peer timeout after its heartbeat went.
  std::map<std::string, std::unique_ptr<PeerLiveness>> liveness_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_PEER_DIRECTORY_H_
