// fork(): the engine around the real fork, in the parent and in the child.

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/fork_mutex.h"
#include "core/engine_impl.h"

namespace diskwire {

// Every lock the child uses is taken here, in this order (the order of the
// code that nests them), so that what it guards is whole in the child; the
// child then makes each new (base/fork_mutex.h says why not unlock).
void EngineImpl::BeforeFork() {
  table_.mu.Lock();
  published_mu_.Lock();  // the child's loop publishes its heartbeat too
  listeners_.BeforeFork();
  if (relay_ != nullptr) relay_->BeforeFork();
  if (PeerDirectory* peers = Peers(); peers != nullptr) peers->BeforeFork();
  for (storage::Volume* v : OpenVolumes()) v->BeforeFork();
}

PeerDirectory* EngineImpl::Peers() const {
  return volumes_open_.load(std::memory_order_acquire) ? peers_.get() : nullptr;
}

std::vector<storage::Volume*> EngineImpl::OpenVolumes() const {
  if (!volumes_open_.load(std::memory_order_acquire)) return {};
  std::vector<storage::Volume*> out = {send_volume_.get()};
  if (recv_volume_ != nullptr) out.push_back(recv_volume_.get());
  return out;
}

void EngineImpl::AfterForkParent() {
  // The child holds every socket now too: a close here must ask first, and
  // the next call here re-reads what the socket carried.
  table_.ForEach([](const std::shared_ptr<Session>& s) {
    s->maybe_shared.store(true);
    s->resync.store(true);
  });
  for (storage::Volume* v : OpenVolumes()) v->AfterForkParent();
  if (PeerDirectory* peers = Peers(); peers != nullptr)
    peers->AfterForkParent();
  if (relay_ != nullptr) relay_->AfterForkParent();
  listeners_.AfterForkParent();
  published_mu_.Unlock();
  table_.mu.Unlock();
}

void EngineImpl::AfterForkChild() {
  // The child shares the parent's sockets but not its threads. Its copies of
  // the connections on the network are adopted afresh (the parent's Session
  // objects may hold locks of threads that do not exist here), dormant until
  // the child uses them; sessions on the storage path stay the parent
  // engine's, which pumps their socket pairs. The child gets an engine
  // identity of its own.
  for (storage::Volume* v : OpenVolumes()) v->AfterForkChild();
  if (PeerDirectory* peers = Peers(); peers != nullptr) peers->AfterForkChild();
  listeners_.AfterForkChild();
  RenewInForkChild(&start_mu_);  // a parent thread may have been starting
  std::vector<std::pair<int, std::pair<Session*, Role>>> inherited;
  for (int fd = 0; fd < kMaxFds; ++fd) {
    if (!owned_[fd].load(std::memory_order_relaxed)) continue;
    Session* s = table_.At(fd);
    if (s != nullptr && s->endpoints_known &&
        s->state.load() == SessionState::kDirect) {
      inherited.push_back({fd, {s, s->role}});
    }
  }
  table_.ClearAfterFork();
  ForgetParentsFds();
  started_.store(false);
  stopping_.store(false);
  // Not joinable when the parent never started its threads, or was itself a
  // child that had not yet: a daemon's double fork.
  if (loop_thread_.joinable()) loop_thread_.detach();
  (void)writer_.release();  // its thread stayed in the parent; a new one starts
                            // on demand
  process_id_ =
      absl::StrCat(config_.node, ".", getpid(), ".", clock_->RealtimeNs());
  resume_port_ = 0;
  resume_nonce_ = RandomBytes(kResumeNonceBytes);
  if (relay_ != nullptr) relay_->AfterForkChild();  // restarts on first use
  relay_started_.store(false);
  RenewInForkChild(&published_mu_);  // taken by BeforeFork
  RenewInForkChild(&table_.mu);
  std::map<Session*, int> first_name;
  for (auto& [fd, who] : inherited) {
    auto [it, fresh] = first_name.emplace(who.first, fd);
    if (fresh) {
      Adopt(fd, who.second, nullptr, 0, /*inherited=*/true);
    } else {
      OnDup(it->second, fd);
    }
  }
}

void EngineImpl::ForgetParentsFds() {
  // The child's copies of the engine's own fds: its loop's epoll and eventfd,
  // the volume watcher, the resume listeners and links, the storage
  // sessions' socket pairs and kept sockets. The parent goes on using them;
  // the child makes its own when it starts its threads. They are closed now,
  // before the application runs again, and their numbers stop being private:
  // closing one later could close a file the application opened meanwhile
  // under the same number, and a stale mark would refuse the application's
  // close() of it (EBADF).
  std::set<int> kept;
  for (storage::Volume* v : OpenVolumes()) {
    for (int fd : v->HeldFds()) kept.insert(fd);
  }
  // The eventfd the shim's waits watch stays at its number, made the child's
  // own: shared, a wake in one process would be taken by a wait in the other.
  SysResult wake = os_->EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake.ok()) {
    os_->Dup3(static_cast<int>(wake.value), wake_fd_, O_CLOEXEC);
    os_->Close(static_cast<int>(wake.value));
  }
  kept.insert(wake_fd_);
  kept.insert(log_.owned_fd());  // the child logs where the parent does
  for (int fd = 0; fd < kMaxFds; ++fd) {
    if (!private_[fd].load(std::memory_order_relaxed) || kept.count(fd))
      continue;
    private_[fd].store(0, std::memory_order_relaxed);
    os_->Close(fd);
  }
  loop_fd_ = kick_fd_ = -1;
  (void)watcher_.release();  // its fd is closed; its watches are the parent's
  resume_listeners_.clear();
  for (auto& [link, tag] : pending_links_) (void)tag.release();
  pending_links_.clear();
  open_dials_.clear();
  to_register_.clear();
  retired_.clear();
  unmatched_.clear();
}

}  // namespace diskwire
