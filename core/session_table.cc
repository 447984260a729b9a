#include "core/session_table.h"

#include <algorithm>

namespace diskwire {
namespace {

uint8_t FlagFor(const Session* s) {
  if (s == nullptr) return 0;
  return s->dormant.load() ? SessionTable::kOwnedDormant : SessionTable::kOwned;
}

}  // namespace

void SessionTable::SetSlot(int fd, Session* s) {
  if (fd < 0 || fd >= kMaxFds) return;
  by_fd_[fd].store(s, std::memory_order_release);
  owned_[fd].store(FlagFor(s), std::memory_order_release);
}

void SessionTable::AddName(int fd, Session* s) {
  if (fd < 0 || fd >= kMaxFds) return;
  {
    absl::MutexLock lock(&s->mu);
    s->names.push_back(fd);
  }
  SetSlot(fd, s);
}

void SessionTable::RefreshFlags(Session* s) {
  for (int fd : s->names) {
    if (At(fd) == s) owned_[fd].store(FlagFor(s), std::memory_order_release);
  }
}

void SessionTable::RemoveName(Session* s, int fd) {
  absl::MutexLock lock(&s->mu);
  s->names.erase(std::remove(s->names.begin(), s->names.end(), fd),
                 s->names.end());
}

Session* SessionTable::Dup(int oldfd, int newfd) {
  if (newfd < 0 || newfd >= kMaxFds || oldfd == newfd) return nullptr;
  if (Session* prev = At(newfd); prev != nullptr) RemoveName(prev, newfd);
  epoll_regs_.erase(newfd);
  Session* s = At(oldfd);
  if (s == nullptr) {
    SetSlot(newfd, nullptr);
    return nullptr;
  }
  AddName(newfd, s);
  return s;
}

SessionTable::Unnamed SessionTable::Unname(int fd) {
  epoll_regs_.erase(fd);
  for (auto& [registered, regs] : epoll_regs_) regs.erase(fd);
  Unnamed out;
  out.session = At(fd);
  if (out.session == nullptr) return out;
  SetSlot(fd, nullptr);
  RemoveName(out.session, fd);
  absl::MutexLock lock(&out.session->mu);
  out.last = out.session->names.empty();
  return out;
}

void SessionTable::UnnameAll(Session* s, int64_t now) {
  {
    absl::MutexLock lock(&s->mu);
    for (int fd : s->names) {
      if (At(fd) == s) SetSlot(fd, nullptr);
    }
    s->names.clear();
  }
  Bury(s, now);
}

std::shared_ptr<Session> SessionTable::Find(const SessionKey& key) const {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second;
}

std::shared_ptr<Session> SessionTable::Find(const Session* s) const {
  std::shared_ptr<Session> found = Find(KeyOf(s->id, s->role));
  return found.get() == s ? found : nullptr;
}

std::shared_ptr<Session> SessionTable::Put(std::shared_ptr<Session> s) {
  std::shared_ptr<Session>& slot = sessions_[KeyOf(s->id, s->role)];
  std::shared_ptr<Session> replaced = std::move(slot);
  slot = std::move(s);
  return replaced;
}

bool SessionTable::Bury(const Session* s, int64_t now) {
  auto it = sessions_.find(KeyOf(s->id, s->role));
  if (it == sessions_.end() || it->second.get() != s) return false;
  graveyard_.push_back({std::move(it->second), now});
  sessions_.erase(it);
  return true;
}

void SessionTable::ForEach(
    const std::function<void(const std::shared_ptr<Session>&)>& fn) const {
  for (const auto& [key, s] : sessions_) fn(s);
}

std::vector<std::shared_ptr<Session>> SessionTable::Snapshot() const {
  std::vector<std::shared_ptr<Session>> all;
  all.reserve(sessions_.size());
  for (const auto& [key, s] : sessions_) all.push_back(s);
  return all;
}

void SessionTable::AddConnecting(std::shared_ptr<Session> s) {
  connecting_.push_back(std::move(s));
}

std::shared_ptr<Session> SessionTable::TakeConnecting(const Session* s) {
  auto it = std::find_if(connecting_.begin(), connecting_.end(),
                         [s](const auto& p) { return p.get() == s; });
  if (it == connecting_.end()) return nullptr;
  std::shared_ptr<Session> taken = std::move(*it);
  connecting_.erase(it);
  return taken;
}

bool SessionTable::BuryConnecting(const Session* s, int64_t now) {
  std::shared_ptr<Session> taken = TakeConnecting(s);
  if (taken == nullptr) return false;
  graveyard_.push_back({std::move(taken), now});
  return true;
}

bool SessionTable::SweepGraveyard(
    int64_t now, int64_t grace_ns,
    std::vector<std::shared_ptr<Session>>* unreleased) {
  const size_t before = graveyard_.size();
  graveyard_.erase(
      std::remove_if(graveyard_.begin(), graveyard_.end(),
                     [&](const auto& g) { return now - g.second > grace_ns; }),
      graveyard_.end());
  for (const auto& [s, since] : graveyard_) {
    if (!s->buffers_released.exchange(true)) unreleased->push_back(s);
  }
  return graveyard_.size() < before;
}

void SessionTable::OnEpollCtl(int epfd, int op, int fd,
                              const epoll_event* event) {
  if (op == EPOLL_CTL_DEL) {
    auto it = epoll_regs_.find(fd);
    if (it != epoll_regs_.end()) it->second.erase(epfd);
    return;
  }
  if (event != nullptr) epoll_regs_[fd][epfd] = *event;
}

const std::map<int, epoll_event>* SessionTable::EpollRegistrations(
    int fd) const {
  auto it = epoll_regs_.find(fd);
  return it == epoll_regs_.end() ? nullptr : &it->second;
}

int SessionTable::FdRegisteredWith(int epfd, uint64_t data) const {
  for (const auto& [fd, regs] : epoll_regs_) {
    auto it = regs.find(epfd);
    if (it != regs.end() && it->second.data.u64 == data) return fd;
  }
  return -1;
}

void SessionTable::ClearAfterFork() {
  for (int fd = 0; fd < kMaxFds; ++fd) {
    if (owned_[fd].load(std::memory_order_relaxed) != 0 ||
        by_fd_[fd].load(std::memory_order_relaxed) != nullptr) {
      SetSlot(fd, nullptr);
    }
  }
  sessions_.clear();
  connecting_.clear();
  epoll_regs_.clear();
}

}  // namespace diskwire
