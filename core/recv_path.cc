// The receive path on the application's threads: DIRECT on the TCP socket,
// STORAGE on the socket pair, and a session's end.

#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "core/engine_impl.h"
#include "core/iov.h"

namespace diskwire {

SysResult EngineImpl::RecvOn(Session* s, int fd, msghdr* msg, int flags,
                             SessionState in, size_t* received, bool* retry) {
  *retry = false;
  // The blocking mode matters only once a call would block: no fcntl on the
  // fast path.
  auto nonblocking = [&] { return IsNonBlocking(fd, flags); };
  // MSG_WAITALL on a blocking socket: keep reading until the buffer is full, as
  // the kernel would (the inner reads never block, so that a swap can always
  // take the socket).
  const bool wait_all =
      (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && !nonblocking();
  const size_t want = IovTotal(msg->msg_iov, msg->msg_iovlen);
  const uint32_t generation = s->generation.load();
  // The iovecs still to fill: the caller's, until a MSG_WAITALL read comes
  // short and a copy (rest) is advanced past what arrived.
  iovec* iov = msg->msg_iov;
  size_t iovlen = msg->msg_iovlen;
  absl::InlinedVector<iovec, 8> rest;
  auto advance = [&](size_t skip) {
    if (iov != rest.data()) rest.assign(iov, iov + iovlen);
    while (!rest.empty() && skip >= rest.front().iov_len) {
      skip -= rest.front().iov_len;
      rest.erase(rest.begin());
    }
    if (!rest.empty()) {
      rest.front().iov_base = static_cast<char*>(rest.front().iov_base) + skip;
      rest.front().iov_len -= skip;
    }
    iov = rest.data();
    iovlen = rest.size();
  };
  size_t got = *received;
  if (got > 0) advance(got);
  while (true) {
    SysResult r;
    {
      absl::MutexLock lock(&s->recv_mu);
      if (s->state.load() != in) {
        // A swap: the application never sees one, so a MSG_WAITALL read goes
        // on filling its buffer from the new file.
        *retry = got == 0 || wait_all;
        *received = got;
        return got > 0 ? SysResult::Ok(got) : SysResult::Fail(EAGAIN);
      }
      msghdr m = *msg;
      m.msg_iov = iov;
      m.msg_iovlen = iovlen;
      r = os_->RecvMsg(fd, &m, (flags & ~MSG_WAITALL) | MSG_DONTWAIT);
      if (got == 0)
        msg->msg_flags = m.msg_flags, msg->msg_namelen = m.msg_namelen;
    }
    if (r.ok()) {
      got += r.value;
      if (r.value == 0 && got == 0 && want > 0 &&
          in == SessionState::kStorage) {
        absl::MutexLock lock(&s->mu);  // the end of a session that failed
        if (s->error != 0) return SysResult::Fail(s->error);
      }
      *received = got;
      if (!wait_all || r.value == 0 || got >= want) return SysResult::Ok(got);
      advance(r.value);
      continue;
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (nonblocking()) return got > 0 ? SysResult::Ok(got) : r;
      WaitReady(fd, POLLIN, s, generation, in);
      continue;
    }
    if (got > 0) return SysResult::Ok(got);  // the error shows on the next call
    if (in != SessionState::kDirect) return r;
    // The detector says whether the errno names the network.
    if (!s->detector.OnSocketError(r.error)) return r;
    s->abort_consumed = true;  // SO_ERROR is read now
    if (TriggerFailover(s, strerror(r.error), "")) {
      *retry = true;
      return r;
    }
    return r;
  }
}

SysResult EngineImpl::RecvMsg(int fd, msghdr* msg, int flags) {
  Session* s = SessionFor(fd);
  if (s == nullptr) return os_->RecvMsg(fd, msg, flags);
  if (!s->endpoints_known && !FinishAdoption(s, fd))
    return os_->RecvMsg(fd, msg, flags);
  if (s->resync.load(std::memory_order_relaxed) && !Activate(s, fd))
    return os_->RecvMsg(fd, msg, flags);
  size_t received = 0;
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
      SysResult r = os_->RecvMsg(fd, msg, flags);
      if (r.ok() && r.value == 0 &&
          IovTotal(msg->msg_iov, msg->msg_iovlen) > 0) {
        absl::MutexLock lock(&s->mu);
        if (s->error != 0) return SysResult::Fail(s->error);
      }
      return r;
    }
    bool retry = false;
    SysResult r = RecvOn(s, fd, msg, flags, st, &received, &retry);
    if (!retry) return r;
  }
}

}  // namespace diskwire
