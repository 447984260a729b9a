// File: core/session_table.h
// The sessions this process carries: by (id, role), by the fds that name
// them, the ones still connecting (no id yet), the ones that ended a moment
// ago, and the application's epoll registrations of its fds (the shadow a
// swap needs, because epoll keys a registration on the fd and its file).
//
// Thread safety: `mu` guards everything but the fd slots, which are written
// under it and read without any lock by the hooks (At()): the healthy
// send/recv path takes no table-wide lock. A session that leaves the table
// stays in its graveyard for a grace period, so that a hook that read its
// slot just before the application's own close() never reads freed memory.
// Lock order: mu before Session::mu.

#ifndef DISKWIRE_CORE_SESSION_TABLE_H_
#define DISKWIRE_CORE_SESSION_TABLE_H_

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "core/session.h"

namespace diskwire {

using SessionKey = std::tuple<uint64_t, uint64_t, int>;
inline SessionKey KeyOf(const SessionId& id, Role role) {
  return {id.high, id.low, static_cast<int>(role)};
}

class SessionTable {
 public:
  static constexpr int kMaxFds = 1 << 16;
  static constexpr uint8_t kOwned = 1;
  static constexpr uint8_t kOwnedDormant = 2;

  // `owned`: kMaxFds flags that the shim reads without a call (Engine::Owns):
  // 0 for an fd that names no session, kOwnedDormant for one whose session is
  // dormant, kOwned otherwise. The table keeps them in step with its slots.
  explicit SessionTable(std::atomic<uint8_t>* owned) : owned_(owned) {}
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  mutable absl::Mutex mu;

  // --- Names: which session an fd names. ---
  // Lock-free. Null for an fd out of range or naming nothing.
  Session* At(int fd) const {
    if (fd < 0 || fd >= kMaxFds) return nullptr;
    return by_fd_[fd].load(std::memory_order_acquire);
  }
  // Makes `fd` name `s` (null: nothing). Does not touch s->names.
  void SetSlot(int fd, Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Adds `fd` to the names of `s`.
  void AddName(int fd, Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The owned flags of every name of `s` follow its dormancy.
  void RefreshFlags(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu);
  // dup2(oldfd, newfd): newfd stops naming what it named (and its epoll
  // registrations go, as the kernel drops them with the file) and names what
  // oldfd names. Returns that session, or null.
  Session* Dup(int oldfd, int newfd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // close(fd): fd's slot, its epoll registrations and those in it (it may be
  // an epoll set) go. Returns the session it named (null: none) and whether
  // it was that session's last name.
  struct Unnamed {
    Session* session = nullptr;
    bool last = false;
  };
  Unnamed Unname(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Every name of `s` goes, and `s` with them (to the graveyard).
  void UnnameAll(Session* s, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // --- Sessions by (id, role), and those still connecting. ---
  std::shared_ptr<Session> Find(const SessionKey& key) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The table's own reference to `s`, or null when `s` is not the session
  // under its key (it ended, or a newer one replaced it).
  std::shared_ptr<Session> Find(const Session* s) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Files `s` under its key; returns the session it replaced, if any.
  std::shared_ptr<Session> Put(std::shared_ptr<Session> s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Moves `s` to the graveyard when it is the session under its key; false
  // when it was not there.
  bool Bury(const Session* s, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void ForEach(const std::function<void(const std::shared_ptr<Session>&)>& fn)
      const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // A copy of the sessions under their keys, to work on without the lock.
  std::vector<std::shared_ptr<Session>> Snapshot() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  size_t size() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return sessions_.size();
  }

  void AddConnecting(std::shared_ptr<Session> s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Removes `s` from those connecting; returns the table's reference, or
  // null when it was not there (another thread took it).
  std::shared_ptr<Session> TakeConnecting(const Session* s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Moves `s` from those connecting to the graveyard (a connection that opens
  // over the volume as a new session); false when it was not there.
  bool BuryConnecting(const Session* s, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  const std::vector<std::shared_ptr<Session>>& connecting() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return connecting_;
  }

  // --- The graveyard. ---
  // Frees the sessions buried longer than `grace_ns` ago. Returns whether any
  // went, and appends to `unreleased` those still buried whose buffers
  // were not given back yet (each once: buffers_released is set).
  bool SweepGraveyard(int64_t now, int64_t grace_ns,
                      std::vector<std::shared_ptr<Session>>* unreleased)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  size_t buried() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return graveyard_.size();
  }

  // --- The epoll shadow: fd -> (epfd -> event). ---
  void OnEpollCtl(int epfd, int op, int fd, const epoll_event* event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The application's registrations of `fd`, or null when it has none.
  const std::map<int, epoll_event>* EpollRegistrations(int fd) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // The fd whose registration in `epfd` carries `data`, or -1.
  int FdRegisteredWith(int epfd, uint64_t data) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // In a forked child: the parent's sessions are not the child's (the engine
  // adopts its copies afresh). Clears every slot, flag, session and
  // registration; the graveyard stays, as hooks may still hold its sessions.
  void ClearAfterFork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

 private:
  void RemoveName(Session* s, int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  std::atomic<uint8_t>* const owned_;
  std::atomic<Session*> by_fd_[kMaxFds] = {};
  // Keyed by (id, role): both ends of one connection may live in one process.
  std::map<SessionKey, std::shared_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu);
  std::vector<std::shared_ptr<Session>> connecting_ ABSL_GUARDED_BY(mu);
  std::vector<std::pair<std::shared_ptr<Session>, int64_t>> graveyard_
      ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<int, std::map<int, epoll_event>> epoll_regs_
      ABSL_GUARDED_BY(mu);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SESSION_TABLE_H_
