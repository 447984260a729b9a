// The data path on the application's threads: sending while DIRECT (the ring
// copy, the lazy trim, waits a swap can interrupt) and on the socket pair once
// in STORAGE. Receiving is in recv_path.cc; what the application may still ask
// of the socket after a swap, in socket_queries.cc.

#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/engine_impl.h"
#include "core/iov.h"
#include "core/message_calls.h"
#include "core/signal_restart.h"

namespace diskwire {

namespace {

constexpr int kWaitSliceMs = 20;  // how soon a blocked hook notices a swap

// The engine sends with MSG_NOSIGNAL, for it may carry the stream on over
// the volume; an EPIPE that reaches the application comes with the SIGPIPE
// the kernel's send would have raised on this thread.
SysResult SignalBrokenPipe(SysResult r, int flags) {
  if (r.error == EPIPE && (flags & MSG_NOSIGNAL) == 0) raise(SIGPIPE);
  return r;
}

}  // namespace

void EngineImpl::WaitWhileSwapping(Session* s) {
  absl::MutexLock lock(&s->mu);
  while (IsSwapping(s->state.load())) {
    s->state_changed.WaitWithTimeout(&s->mu, absl::Milliseconds(kWaitSliceMs));
  }
}

SysResult EngineImpl::WaitReady(int fd, short events, Session* s,
                                uint32_t generation, SessionState in,
                                absl::Time* deadline, bool moved) {
  if (*deadline == absl::InfinitePast()) {
    // The first wait of the call: it gives up at the socket's timeout.
    timeval tv{};
    socklen_t len = sizeof(tv);
    const int option = (events & POLLOUT) ? SO_SNDTIMEO : SO_RCVTIMEO;
    *deadline = os_->GetSockOpt(fd, SOL_SOCKET, option, &tv, &len).ok() &&
                        (tv.tv_sec != 0 || tv.tv_usec != 0)
                    ? absl::Now() + absl::DurationFromTimeval(tv)
                    : absl::InfiniteFuture();
  }
  pollfd p{fd, events, 0};
  while (s->generation.load() == generation && s->state.load() == in) {
    const absl::Duration left = *deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return SysResult::Fail(EAGAIN);
    const int slice_ms = static_cast<int>(std::min<int64_t>(
        kWaitSliceMs,
        absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)))));
    SysResult r = os_->Poll(&p, 1, slice_ms);
    if (!r.ok() && r.error == EINTR) {
      // As the kernel's blocking call: a signal ends it with what it moved,
      // or with EINTR unless the call restarts (and then, like it, this wait
      // goes on). A program's handler runs now, and one that must see the
      // call end (Python's, for one) sees it end.
      if (moved || !RestartsAfterSignal(*deadline != absl::InfiniteFuture())) {
        return SysResult::Fail(EINTR);
      }
      continue;
    }
    if (!r.ok() || r.value > 0) return SysResult::Ok(0);
  }
  return SysResult::Ok(0);
}

void EngineImpl::TrimByKernelAck(Session* s) {
  // Close() takes mu too: the fd cannot be closed and reused under the probe.
  absl::MutexLock lock(&s->mu);
  if (s->names.empty()) return;
  // SIOCOUTQ, not tcpi_bytes_acked: the latter counts the client's SYN
  // (core/tcp_probe.h).
  auto acked = probe_.AckedOffset(s->names[0], s->sent_to_socket, s->shut_wr);
  if (!acked.ok()) return;
  s->kernel_acked.store(*acked, std::memory_order_relaxed);
  (void)s->ring.TrimTo(std::min(*acked, s->sent_to_socket));
}

inline void EngineImpl::KeepSent(Session* s, int fd, const iovec* iov,
                                 size_t iovcnt, size_t sent) {
  const uint64_t end = s->sent_to_socket + sent;
  s->sent_to_socket = end;
  uint64_t held = 0;  // the peer's kernel holds every byte below this
  if (end >= s->next_trim_head) {
    // After the send, so that the acknowledgement covers these bytes too: on
    // a fast link most of a large write is acknowledged before sendmsg
    // returns, and those bytes are never copied.
    s->next_trim_head = end + Session::kEagerTrimBytes;
    auto acked = probe_.AckedOffset(fd, end, s->shut_wr);
    if (acked.ok()) {
      held = std::min(*acked, end);
      s->kernel_acked.store(held, std::memory_order_relaxed);
    }
  }
  s->ring.Append(iov, static_cast<int>(iovcnt), sent, held);
}

SysResult EngineImpl::FlushBacklog(Session* s, int fd) {
  while (s->sent_to_socket < s->ring.head()) {
    auto view =
        s->ring.ViewFrom(s->sent_to_socket, s->ring.head() - s->sent_to_socket);
    if (!view.ok()) return SysResult::Fail(EIO);  // cannot happen: kept bytes
    iovec iov[2] = {
        {const_cast<char*>(view->first.data()), view->first.size()},
        {const_cast<char*>(view->second.data()), view->second.size()}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = view->second.empty() ? 1 : 2;
    SysResult r = SendMessage(os_, fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (!r.ok()) return r;
    s->sent_to_socket += r.value;
  }
  if (s->fin_owed) {
    os_->Shutdown(fd, SHUT_WR);
    s->fin_owed = false;
    s->shut_wr = true;
  }
  return SysResult::Ok(0);
}

EngineImpl::DirectAttempt EngineImpl::AttemptDirect(Session* s, int fd,
                                                    const msghdr& msg,
                                                    int flags, size_t want,
                                                    size_t done) {
  DirectAttempt a{SysResult::Fail(EAGAIN), done};
  // The caller's iovecs, less what earlier attempts sent and cut to the
  // ring's room: built only when the message does not go whole.
  absl::InlinedVector<iovec, 8> part;
  FutexLockHolder lock(&s->send_mu);
  a.generation = s->generation.load();
  if (s->state.load() != SessionState::kDirect) {
    a.moved = true;
    return a;
  }
  if (s->sent_to_socket < s->ring.head()) {
    // After a resume: the bytes the peer lacks go before the new ones.
    a.result = FlushBacklog(s, fd);
    if (s->sent_to_socket < s->ring.head()) {
      if (a.result.ok()) a.result = SysResult::Fail(EAGAIN);
      return a;  // a.result says why the new bytes wait
    }
  }
  if (s->ring.Free() < want - done) TrimByKernelAck(s);
  const size_t room = std::min(s->ring.Free(), want - done);
  if (room == 0 && want > 0) {
    a.result = SysResult::Fail(EAGAIN);  // the ring is full of bytes the peer
    return a;                            // has not acknowledged
  }
  // The caller's own iovecs when the message goes whole (the common case);
  // else skip what earlier attempts sent and take at most `room` bytes: every
  // byte the kernel accepts has a place in the ring.
  msghdr slice;
  const msghdr& m = done > 0 || room < want
                        ? (slice = MsgSlice(msg, done, room, &part))
                        : msg;
  a.result = SendMessage(os_, fd, m, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
  if (a.result.ok()) {
    KeepSent(s, fd, m.msg_iov, m.msg_iovlen, a.result.value);
    a.done += a.result.value;
    a.ring_cut = static_cast<size_t>(a.result.value) == room && a.done < want;
  }
  return a;
}

SysResult EngineImpl::SendDirect(Session* s, int fd, const msghdr* msg,
                                 int flags, DirectAttempt a, bool* retry) {
  *retry = false;
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  // The blocking mode matters only once a call would block: no fcntl on the
  // fast path.
  auto nonblocking = [&] { return IsNonBlocking(fd, flags); };
  absl::Time deadline = absl::InfinitePast();  // set by the first wait
  while (!a.moved) {
    SysResult r = a.result;
    if (r.ok()) {
      if (a.done == want || nonblocking()) return SysResult::Ok(a.done);
      // A short send: the socket's buffer is full. Wait for POLLOUT, as the
      // kernel's blocking send waits for room, rather than taking the few
      // bytes each ACK frees one sendmsg at a time.
      if (!a.ring_cut) r = SysResult::Fail(EAGAIN);
    }
    if (r.ok()) {
      // The ring's room cut the send short: try again at once.
    } else if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (nonblocking()) {
        return a.done > 0 ? SysResult::Ok(a.done) : SysResult::Fail(EAGAIN);
      }
      SysResult waited =
          WaitReady(fd, POLLOUT, s, a.generation, SessionState::kDirect,
                    &deadline, a.done > 0);
      if (!waited.ok()) return a.done > 0 ? SysResult::Ok(a.done) : waited;
    } else {
      if (r.error == EINTR) return a.done > 0 ? SysResult::Ok(a.done) : r;
      // The detector says whether the errno names the network.
      if (!s->detector.OnSocketError(r.error))
        return a.done > 0 ? SysResult::Ok(a.done) : r;
      s->abort_consumed = true;  // SO_ERROR is read now
      if (!TriggerFailover(s, strerror(r.error), "")) {
        return a.done > 0 ? SysResult::Ok(a.done) : r;
      }
      break;
    }
    a = AttemptDirect(s, fd, *msg, flags, want, a.done);
  }
  // The session moved to storage: the caller sends the rest through the socket
  // pair.
  *retry = true;
  if (a.done > 0) return SysResult::Ok(a.done);
  return SysResult::Fail(EAGAIN);
}

SysResult EngineImpl::SendMsg(int fd, const msghdr* msg, int flags) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return SendMessage(os_, fd, *msg, flags);
  if (!s->endpoints_known && !FinishAdoption(s, fd))
    return SendMessage(os_, fd, *msg, flags);
  if (s->resync.load(std::memory_order_relaxed) && !Activate(s, fd))
    return SendMessage(os_, fd, *msg, flags);
  if (s->state.load() != SessionState::kDirect) {
    return SendAcrossStates(s, fd, msg, flags, nullptr);
  }
  // The healthy path: one attempt, and the whole message goes.
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  const DirectAttempt first = AttemptDirect(s, fd, *msg, flags, want, 0);
  if (first.result.ok() && first.done == want) return SysResult::Ok(want);
  return SendAcrossStates(s, fd, msg, flags, &first);
}

SysResult EngineImpl::SendAcrossStates(Session* s, int fd, const msghdr* msg,
                                       int flags, const DirectAttempt* first) {
  size_t done = 0;
  size_t want = 0;  // counted once a state change interrupts the send
  // The caller's message, or what a state change left of it.
  const msghdr* rest = msg;
  msghdr slice;
  absl::InlinedVector<iovec, 8> part;
  while (true) {
    SessionState st = s->state.load();
    if (first == nullptr && IsSwapping(st)) {
      WaitWhileSwapping(s);
      continue;
    }
    if (first == nullptr && st == SessionState::kClosed) {
      // The session's error; or, when it ended without one (its peer left
      // after its end of file), the pair whose far end is shut: EPIPE.
      int error;
      {
        absl::MutexLock lock(&s->mu);
        error = s->error;
      }
      SysResult r = error != 0
                        ? SysResult::Fail(error)
                        : SendMessage(os_, fd, *rest, flags | MSG_NOSIGNAL);
      if (r.ok()) done += r.value;
      return done > 0 ? SysResult::Ok(done) : SignalBrokenPipe(r, flags);
    }
    bool retry = false;
    SysResult r;
    if (first != nullptr) {
      // The caller's attempt on the TCP socket goes on whatever the state is
      // now: what it sent counts, and an error it met is handled once.
      r = SendDirect(s, fd, msg, flags, *first, &retry);
      first = nullptr;
    } else if (st == SessionState::kDirect) {
      const size_t left = IovTotal(rest->msg_iov, rest->msg_iovlen);
      r = SendDirect(s, fd, rest, flags,
                     AttemptDirect(s, fd, *rest, flags, left, 0), &retry);
    } else {
      r = SendStorage(s, fd, rest, flags, &retry);
    }
    if (r.ok()) done += r.value;
    if (!retry)
      return done > 0 ? SysResult::Ok(done) : SignalBrokenPipe(r, flags);
    // The session moved between TCP and storage under the call. A blocking
    // send goes on in the new state: it returns once every byte is handed
    // over, as the kernel's does, for programs that trust it to.
    if (done > 0) {
      if (want == 0) want = IovTotal(msg->msg_iov, msg->msg_iovlen);
      if (done == want || IsNonBlocking(fd, flags)) return SysResult::Ok(done);
      slice = MsgSlice(*msg, done, want - done, &part);
      rest = &slice;
    }
  }
}

SysResult EngineImpl::SendStorage(Session* s, int fd, const msghdr* msg,
                                  int flags, bool* retry) {
  *retry = false;
  {
    absl::MutexLock lock(&s->mu);
    if (s->error != 0) return SysResult::Fail(s->error);
  }
  // A destination address, which TCP ignores on a connected socket, would
  // make the socket pair fail with EISCONN.
  msghdr m = *msg;
  m.msg_name = nullptr;
  m.msg_namelen = 0;
  const size_t want = IovTotal(m.msg_iov, m.msg_iovlen);
  size_t done = 0;
  absl::InlinedVector<iovec, 8> part;
  const uint32_t generation = s->generation.load();
  absl::Time deadline = absl::InfinitePast();  // set by the first wait
  while (true) {
    SysResult r;
    {
      // Never blocked inside the pair: a resume must be able to take it.
      FutexLockHolder lock(&s->send_mu);
      if (s->state.load() != SessionState::kStorage) {
        *retry = true;
        return done > 0 ? SysResult::Ok(done) : SysResult::Fail(EAGAIN);
      }
      const msghdr rest = done > 0 ? MsgSlice(m, done, want - done, &part) : m;
      r = SendMessage(os_, fd, rest, flags | MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (r.ok()) {
      done += r.value;
      if (done == want || IsNonBlocking(fd, flags)) return SysResult::Ok(done);
      r = SysResult::Fail(EAGAIN);  // a short send: the pair is full
    }
    if (r.error == EAGAIN && !IsNonBlocking(fd, flags)) {
      // SO_SNDTIMEO passed (EAGAIN), or a signal (EINTR).
      SysResult waited = WaitReady(fd, POLLOUT, s, generation,
                                   SessionState::kStorage, &deadline, done > 0);
      if (!waited.ok()) return done > 0 ? SysResult::Ok(done) : waited;
      continue;
    }
    if (done > 0) return SysResult::Ok(done);
    if (r.error == EPIPE) {
      absl::MutexLock lock(&s->mu);
      if (s->error != 0) return SysResult::Fail(s->error);
    }
    return r;
  }
}

SysResult EngineImpl::Shutdown(int fd, int how) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->Shutdown(fd, how);
  WaitWhileSwapping(s);
  FutexLockHolder lock(&s->send_mu);
  const bool writing = how == SHUT_WR || how == SHUT_RDWR;
  if (writing && s->on_tcp && s->sent_to_socket < s->ring.head()) {
    // After a resume, with bytes the peer lacks still unsent: the FIN waits
    // for them (FlushBacklog sends it).
    FlushBacklog(s, fd);
    if (s->sent_to_socket < s->ring.head()) {
      s->fin_owed = true;
      return how == SHUT_RDWR ? os_->Shutdown(fd, SHUT_RD) : SysResult::Ok(0);
    }
  }
  SysResult r =
      os_->Shutdown(fd, how);  // DIRECT: a FIN on TCP; STORAGE: EOF on the pair
  // The swap clears `on_tcp` under send_mu (the state may already say
  // FAILING_OVER while the fd still names the TCP socket).
  if (r.ok() && writing && s->on_tcp) {
    // The FIN sits at ring.head() in the stream: a later failover must carry it
    // too.
    s->shut_wr = true;
  }
  log_.Debug("session ", s->label, ": shutdown(", how, ") = ", r.value, " in ",
             SessionStateName(s->state.load()), " generation ",
             s->generation.load());
  return r;
}

}  // namespace diskwire
