// File: shim/wait_hooks.cc
// Waiting: poll, ppoll, select and pselect on sets that hold owned fds also
// wait on the engine's wake fd. When it fires (an owned fd now names another
// file) the wake is consumed and the wait retried with the time that remains,
// so the application never sees the wake fd, nor a spurious event. epoll waits
// pass through: the engine re-registers swapped fds, which wakes them.

#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include <memory>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/hooks.h"
#include "shim/real_calls.h"

namespace diskwire::shim {
namespace {

constexpr int64_t kNsPerSec = 1000000000;
constexpr nfds_t kStackPollFds = 64;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

// A relative timeout that survives retries: nullptr/negative means forever.
class Deadline {
 public:
  explicit Deadline(const timespec* timeout)
      : forever_(timeout == nullptr),
        at_(forever_
                ? 0
                : NowNs() + timeout->tv_sec * kNsPerSec + timeout->tv_nsec) {}
  static Deadline FromMs(int ms) {
    if (ms < 0) return Deadline(nullptr);
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    return Deadline(&ts);
  }
  // What remains, or nullptr for forever; never negative.
  const timespec* Remaining() {
    if (forever_) return nullptr;
    const int64_t left = std::max<int64_t>(at_ - NowNs(), 0);
    left_ = {static_cast<time_t>(left / kNsPerSec),
             static_cast<long>(left % kNsPerSec)};
    return &left_;
  }

 private:
  bool forever_;
  int64_t at_;
  timespec left_{};
};

Engine* EngineForPollSet(const pollfd* fds, nfds_t nfds) {
  Engine* engine = CurrentEngine();
  if (engine == nullptr) return nullptr;
  for (nfds_t i = 0; i < nfds; ++i) {
    if (engine->Owns(fds[i].fd)) return engine;
  }
  return nullptr;
}

// ppoll over the caller's set plus the wake fd, retried after each wake.
int PollOwned(Engine* engine, pollfd* fds, nfds_t nfds, Deadline deadline,
              const sigset_t* sigmask) {
  pollfd stack_set[kStackPollFds + 1];
  MallocBuffer<pollfd> heap_set;
  pollfd* set = stack_set;
  if (nfds > kStackPollFds) {
    heap_set = AllocateBuffer<pollfd>(nfds + 1);
    if (heap_set == nullptr) {
      errno = ENOMEM;
      return -1;
    }
    set = heap_set.get();
  }
  InsideDiskwire inside;
  for (;;) {
    memcpy(set, fds, nfds * sizeof(pollfd));
    set[nfds] = {engine->wake_fd(), POLLIN, 0};
    const int n = Real().ppoll(set, nfds + 1, deadline.Remaining(), sigmask);
    if (n < 0) return n;
    const bool woken = set[nfds].revents != 0;
    if (woken) engine->ConsumeWake();
    // An error or hang-up on an owned fd may be the network failing: the engine
    // moves the session to storage and the wait starts again on the new file.
    bool moved = false;
    for (nfds_t i = 0; i < nfds; ++i) {
      if ((set[i].revents & (POLLERR | POLLHUP)) && engine->Owns(set[i].fd) &&
          engine->CheckPath(set[i].fd)) {
        moved = true;
      }
    }
    if (moved) continue;
    const int visible = n - (woken ? 1 : 0);
    if (visible > 0 || n == 0) {
      for (nfds_t i = 0; i < nfds; ++i) fds[i].revents = set[i].revents;
      return visible;
    }
    // Only the wake fired: an owned fd changed files; wait again on it.
  }
}

Engine* EngineForFdSets(int nfds, const fd_set* r, const fd_set* w,
                        const fd_set* e) {
  Engine* engine = CurrentEngine();
  if (engine == nullptr) return nullptr;
  const int top = std::min(nfds, FD_SETSIZE);
  for (int fd = 0; fd < top; ++fd) {
    if (!engine->Owns(fd)) continue;
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) ||
        (e && FD_ISSET(fd, e))) {
      return engine;
    }
  }
  return nullptr;
}

// pselect over the caller's sets plus the wake fd in the read set (when it is
// below FD_SETSIZE), retried after each wake.
int SelectOwned(Engine* engine, int nfds, fd_set* r, fd_set* w, fd_set* e,
                Deadline* deadline, const sigset_t* sigmask) {
  const int wake = engine->wake_fd();
  const bool add_wake = wake >= 0 && wake < FD_SETSIZE;
  InsideDiskwire inside;
  for (;;) {
    fd_set rs, ws, es;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_ZERO(&es);
    if (r) rs = *r;
    if (w) ws = *w;
    if (e) es = *e;
    if (add_wake) FD_SET(wake, &rs);
    const int top = add_wake ? std::max(nfds, wake + 1) : nfds;
    const int n = Real().pselect(top, &rs, w ? &ws : nullptr, e ? &es : nullptr,
                                 deadline->Remaining(), sigmask);
    if (n < 0) return n;
    const bool woken = add_wake && FD_ISSET(wake, &rs);
    if (woken) {
      engine->ConsumeWake();
      FD_CLR(wake, &rs);
    }
    const int visible = n - (woken ? 1 : 0);
    if (visible > 0 || n == 0) {
      if (r) *r = rs;
      if (w) *w = ws;
      if (e) *e = es;
      return visible;
    }
  }
}

}  // namespace
}  // namespace diskwire::shim

using diskwire::Engine;
using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(int, poll, (pollfd * fds, nfds_t nfds, int timeout_ms)) {
  Engine* engine = EngineForPollSet(fds, nfds);
  if (engine == nullptr) return Real().poll(fds, nfds, timeout_ms);
  return PollOwned(engine, fds, nfds, Deadline::FromMs(timeout_ms), nullptr);
}

DW_HOOK(int, ppoll,
        (pollfd * fds, nfds_t nfds, const timespec* timeout,
         const sigset_t* sigmask)) {
  Engine* engine = EngineForPollSet(fds, nfds);
  if (engine == nullptr) return Real().ppoll(fds, nfds, timeout, sigmask);
  return PollOwned(engine, fds, nfds, Deadline(timeout), sigmask);
}

DW_HOOK(int, __poll_chk,
        (pollfd * fds, nfds_t nfds, int timeout_ms, size_t fdslen)) {
  if (EngineForPollSet(fds, nfds) == nullptr) {
    return Real().__poll_chk(fds, nfds, timeout_ms, fdslen);
  }
  if (fdslen / sizeof(*fds) < nfds) Real().__chk_fail();
  return dw_hook_poll(fds, nfds, timeout_ms);
}

DW_HOOK(int, __ppoll_chk,
        (pollfd * fds, nfds_t nfds, const timespec* timeout,
         const sigset_t* sigmask, size_t fdslen)) {
  if (EngineForPollSet(fds, nfds) == nullptr) {
    return Real().__ppoll_chk(fds, nfds, timeout, sigmask, fdslen);
  }
  if (fdslen / sizeof(*fds) < nfds) Real().__chk_fail();
  return dw_hook_ppoll(fds, nfds, timeout, sigmask);
}

// Like Linux's select, updates *timeout to the time not slept.
DW_HOOK(int, select,
        (int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* timeout)) {
  Engine* engine = EngineForFdSets(nfds, r, w, e);
  if (engine == nullptr) return Real().select(nfds, r, w, e, timeout);
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_usec < 0)) {
    errno = EINVAL;
    return -1;
  }
  timespec ts{};
  if (timeout != nullptr) {
    ts = {timeout->tv_sec + timeout->tv_usec / 1000000,
          (timeout->tv_usec % 1000000) * 1000L};
  }
  Deadline deadline(timeout != nullptr ? &ts : nullptr);
  const int n = SelectOwned(engine, nfds, r, w, e, &deadline, nullptr);
  if (timeout != nullptr) {
    const timespec* left = deadline.Remaining();
    *timeout = {left->tv_sec, static_cast<suseconds_t>(left->tv_nsec / 1000)};
  }
  return n;
}

DW_HOOK(int, pselect,
        (int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
         const sigset_t* sigmask)) {
  Engine* engine = EngineForFdSets(nfds, r, w, e);
  if (engine == nullptr) return Real().pselect(nfds, r, w, e, timeout, sigmask);
  Deadline deadline(timeout);
  return SelectOwned(engine, nfds, r, w, e, &deadline, sigmask);
}

DW_HOOK(int, epoll_create, (int size)) { return Real().epoll_create(size); }

DW_HOOK(int, epoll_create1, (int flags)) { return Real().epoll_create1(flags); }

// The real call, then the engine's shadow registry, so that a swap can
// re-register the fd with the same events and data.
DW_HOOK(int, epoll_ctl, (int epfd, int op, int fd, epoll_event* event)) {
  const int result = Real().epoll_ctl(epfd, op, fd, event);
  Engine* engine = OwningEngine(fd);
  if (result == 0 && engine != nullptr) {
    MarkEpollFd(epfd);
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnEpollCtl(epfd, op, fd, event);
  }
  return result;
}

namespace diskwire::shim {
namespace {

// epoll_pwait2 on a set holding owned fds: the events of fds the engine moved
// to storage are dropped (their new files report on the next wait), and an
// empty result waits again.
int EpollWaitOwned(Engine* engine, int epfd, epoll_event* events, int maxevents,
                   Deadline deadline, const sigset_t* sigmask) {
  for (;;) {
    const int n = Real().epoll_pwait2(epfd, events, maxevents,
                                      deadline.Remaining(), sigmask);
    if (n <= 0) return n;
    int kept;
    {
      InsideDiskwire inside;
      KeepErrno keep;
      kept = engine->FilterEpollEvents(epfd, events, n);
    }
    if (kept > 0) return kept;
  }
}

}  // namespace
}  // namespace diskwire::shim

DW_HOOK(int, epoll_wait,
        (int epfd, epoll_event* events, int maxevents, int timeout_ms)) {
  Engine* engine = diskwire::shim::CurrentEngine();
  if (engine == nullptr || !diskwire::shim::IsMarkedEpollFd(epfd)) {
    return Real().epoll_wait(epfd, events, maxevents, timeout_ms);
  }
  return diskwire::shim::EpollWaitOwned(
      engine, epfd, events, maxevents,
      diskwire::shim::Deadline::FromMs(timeout_ms), nullptr);
}

DW_HOOK(int, epoll_pwait,
        (int epfd, epoll_event* events, int maxevents, int timeout_ms,
         const sigset_t* sigmask)) {
  Engine* engine = diskwire::shim::CurrentEngine();
  if (engine == nullptr || !diskwire::shim::IsMarkedEpollFd(epfd)) {
    return Real().epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask);
  }
  return diskwire::shim::EpollWaitOwned(
      engine, epfd, events, maxevents,
      diskwire::shim::Deadline::FromMs(timeout_ms), sigmask);
}

DW_HOOK(int, epoll_pwait2,
        (int epfd, epoll_event* events, int maxevents, const timespec* timeout,
         const sigset_t* sigmask)) {
  Engine* engine = diskwire::shim::CurrentEngine();
  if (engine == nullptr || !diskwire::shim::IsMarkedEpollFd(epfd)) {
    return Real().epoll_pwait2(epfd, events, maxevents, timeout, sigmask);
  }
  return diskwire::shim::EpollWaitOwned(engine, epfd, events, maxevents,
                                        diskwire::shim::Deadline(timeout),
                                        sigmask);
}
