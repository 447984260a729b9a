// The receive path on the application's threads: DIRECT on the TCP socket,
// STORAGE on the socket pair, and a session's end.

#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "core/engine_impl.h"
#include "core/failure_detector.h"
#include "core/iov.h"
#include "core/message_calls.h"

namespace diskwire {

namespace {

// The caller's iovecs past the bytes already received (a MSG_WAITALL read
// that a swap interrupted goes on after them): the caller's own array until
// something is skipped, then a copy.
class IovTail {
 public:
  IovTail(const msghdr* msg, size_t skip)
      : iov_(msg->msg_iov), len_(msg->msg_iovlen) {
    if (skip > 0) Skip(skip);
  }

  void Skip(size_t skip) {
    if (iov_ != copy_.data()) copy_.assign(iov_, iov_ + len_);
    size_t used = 0;
    while (used < copy_.size() && skip >= copy_[used].iov_len) {
      skip -= copy_[used++].iov_len;
    }
    copy_.erase(copy_.begin(), copy_.begin() + used);
    if (!copy_.empty()) {
      copy_[0].iov_base = static_cast<char*>(copy_[0].iov_base) + skip;
      copy_[0].iov_len -= skip;
    }
    iov_ = copy_.data();
    len_ = copy_.size();
  }

  // `msg` with these iovecs.
  msghdr Over(const msghdr* msg) const {
    msghdr m = *msg;
    m.msg_iov = iov_;
    m.msg_iovlen = len_;
    return m;
  }

 private:
  iovec* iov_;
  size_t len_;
  absl::InlinedVector<iovec, 8> copy_;
};

}  // namespace

SysResult EngineImpl::RecvOnce(int fd, msghdr* msg, int flags, RecvCall call) {
  return call == RecvCall::kRecvMsg ? os_->RecvMsg(fd, msg, flags)
                                    : ReceiveMessage(os_, fd, msg, flags);
}

SysResult EngineImpl::RecvDirect(Session* s, int fd, msghdr* msg, msghdr* into,
                                 int flags, RecvCall call, size_t* received,
                                 bool* retry) {
  *retry = false;
  size_t got = *received;
  // Counted in before the state is read, both sequentially consistent: a swap
  // either sees this reader (and waits it out) or is seen by it.
  s->readers_on_tcp.fetch_add(1);
  if (s->state.load() != SessionState::kDirect) {
    s->readers_on_tcp.fetch_sub(1);
    *retry = true;
    return got > 0 ? SysResult::Ok(got) : SysResult::Fail(EAGAIN);
  }
  // The application's own flags: the kernel blocks, times out (SO_RCVTIMEO)
  // and waits for a whole MSG_WAITALL buffer as it would without diskwire.
  SysResult r = RecvOnce(fd, into, flags, call);
  // A reset or a timeout handed over here is gone from SO_ERROR: the swap
  // must not take the socket's end for an orderly one. Said before the reader
  // counts out, since the swap reads it next.
  if (!r.ok() && ReasonForErrno(r.error) != FailureReason::kNone) {
    s->abort_consumed = true;
  }
  s->readers_on_tcp.fetch_sub(1);
  if (s->state.load() != SessionState::kDirect) {
    // A swap woke this read (its end of file or error is the swap's, not the
    // stream's) or began as it returned. What it read counts (the swap samples
    // the socket once it is out); a MSG_WAITALL read goes on from the new file.
    if (r.ok()) got += r.value;
    *received = got;
    const bool wait_all = (flags & MSG_WAITALL) && !(flags & MSG_PEEK) &&
                          !IsNonBlocking(fd, flags);
    const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
    *retry = got == 0 || (wait_all && got < want);
    return got > 0 ? SysResult::Ok(got) : SysResult::Fail(EAGAIN);
  }
  if (r.ok()) {
    got += r.value;
    *received = got;
    return SysResult::Ok(got);
  }
  if (got > 0) return SysResult::Ok(got);  // the error shows on the next call
  // The detector says whether the errno names the network (not EAGAIN from a
  // non-blocking socket or a timeout, not EINTR).
  if (!s->detector.OnSocketError(r.error)) return r;
  if (TriggerFailover(s, strerror(r.error), "")) *retry = true;
  return r;
}

SysResult EngineImpl::RecvStorage(Session* s, int fd, msghdr* msg, int flags,
                                  RecvCall call, size_t* received,
                                  bool* retry) {
  *retry = false;
  // The blocking mode matters only once a call would block: no fcntl before.
  auto nonblocking = [&] { return IsNonBlocking(fd, flags); };
  // MSG_WAITALL on a blocking socket: keep reading until the buffer is full, as
  // the kernel would (the inner reads never block, so that a resume can always
  // take the pair).
  const bool wait_all =
      (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && !nonblocking();
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  const uint32_t generation = s->generation.load();
  size_t got = *received;
  IovTail tail(msg, got);
  absl::Time deadline = absl::InfinitePast();  // set by the first wait
  while (true) {
    SysResult r;
    {
      absl::MutexLock lock(&s->recv_mu);
      if (s->state.load() != SessionState::kStorage) {
        // A resume or the end: the application never sees a swap, so a
        // MSG_WAITALL read goes on filling its buffer from the new file.
        *retry = got == 0 || wait_all;
        *received = got;
        return got > 0 ? SysResult::Ok(got) : SysResult::Fail(EAGAIN);
      }
      msghdr m = tail.Over(msg);
      r = RecvOnce(fd, &m, (flags & ~MSG_WAITALL) | MSG_DONTWAIT, call);
      if (got == 0)
        msg->msg_flags = m.msg_flags, msg->msg_namelen = m.msg_namelen;
    }
    if (r.ok()) {
      got += r.value;
      if (r.value == 0 && got == 0 && want > 0) {
        absl::MutexLock lock(&s->mu);  // the end of a session that failed
        if (s->error != 0 && !s->eof_queued) return SysResult::Fail(s->error);
      }
      *received = got;
      if (!wait_all || r.value == 0 || got >= want) return SysResult::Ok(got);
      tail.Skip(r.value);
      continue;
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (nonblocking()) return got > 0 ? SysResult::Ok(got) : r;
      // SO_RCVTIMEO passed (EAGAIN), or a signal (EINTR).
      SysResult waited = WaitReady(fd, POLLIN, s, generation,
                                   SessionState::kStorage, &deadline, got > 0);
      if (!waited.ok()) return got > 0 ? SysResult::Ok(got) : waited;
      continue;
    }
    if (got > 0) return SysResult::Ok(got);  // the error shows on the next call
    return r;
  }
}

SysResult EngineImpl::RecvMsg(int fd, msghdr* msg, int flags) {
  return Receive(fd, msg, flags, RecvCall::kRecvMsg);
}

SysResult EngineImpl::Recv(int fd, msghdr* msg, int flags) {
  return Receive(fd, msg, flags, RecvCall::kWithoutFlags);
}

SysResult EngineImpl::Receive(int fd, msghdr* msg, int flags, RecvCall call) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return RecvOnce(fd, msg, flags, call);
  if (!s->endpoints_known && !FinishAdoption(s, fd))
    return RecvOnce(fd, msg, flags, call);
  if (s->resync.load(std::memory_order_relaxed) && !Activate(s, fd))
    return RecvOnce(fd, msg, flags, call);
  size_t received = 0;
  if (s->state.load() == SessionState::kDirect) {
    // The healthy path: one receive on the TCP socket, into the caller's own
    // message.
    bool retry = false;
    SysResult r = RecvDirect(s, fd, msg, msg, flags, call, &received, &retry);
    if (!retry) return r;
  }
  return ReceiveAcrossStates(s, fd, msg, flags, call, received);
}

SysResult EngineImpl::ReceiveAcrossStates(Session* s, int fd, msghdr* msg,
                                          int flags, RecvCall call,
                                          size_t received) {
  while (true) {
    SessionState st = s->state.load();
    if (IsSwapping(st)) {
      WaitWhileSwapping(s);
      continue;
    }
    if (st == SessionState::kClosed) {
      // A MSG_WAITALL read the end interrupted returns what it has.
      if (received > 0) return SysResult::Ok(received);
      // Nothing swaps the pair any more: what it holds, then the error.
      SysResult r = RecvOnce(fd, msg, flags, call);
      if (r.ok() && r.value == 0 &&
          IovTotal(msg->msg_iov, msg->msg_iovlen) > 0) {
        absl::MutexLock lock(&s->mu);
        if (s->error != 0 && !s->eof_queued) return SysResult::Fail(s->error);
      }
      return r;
    }
    bool retry = false;
    SysResult r;
    if (st == SessionState::kDirect) {
      // After the bytes a swap's MSG_WAITALL read already placed, if any.
      IovTail tail(msg, received);
      msghdr rest = tail.Over(msg);
      r = RecvDirect(s, fd, msg, received > 0 ? &rest : msg, flags, call,
                     &received, &retry);
    } else {
      r = RecvStorage(s, fd, msg, flags, call, &received, &retry);
    }
    if (!retry) return r;
  }
}

}  // namespace diskwire
