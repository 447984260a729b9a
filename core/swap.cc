// The swap: the application's fd moves from the TCP socket to one end of a
// socket pair, everything that can fail first, and the offsets each direction
// goes on from are read from the old socket once no reader is inside it.

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/engine_impl.h"

namespace diskwire {
namespace {

constexpr int kPairBufferBytes = 1 << 20;

}  // namespace

absl::Status EngineImpl::Swap(Session* s) {
  // Both locks: no application thread sends, or receives on the socket pair,
  // while it is swapped; readers of the TCP socket take none
  // (WaitOutTcpReaders).
  FutexLockHolder send_lock(&s->send_mu);
  absl::MutexLock recv_lock(&s->recv_mu);
  std::vector<int> names;
  {
    absl::MutexLock lock(&s->mu);
    names = s->names;
  }
  int old_fd;
  if (names.empty()) {
    // The application closed the socket while the peer still lacked some of its
    // bytes: the engine kept it (Close), and only the stream's end travels on;
    // no socket pair is needed.
    if (s->linger_fd < 0) {
      return absl::FailedPreconditionError("the application closed the socket");
    }
    old_fd = s->linger_fd;
    s->linger_fd = -1;
  } else {
    SysResult old = os_->Fcntl(names[0], F_DUPFD_CLOEXEC, 0);
    if (!old.ok())
      return absl::ErrnoToStatus(old.error, "keeping the TCP socket");
    old_fd = static_cast<int>(old.value);
  }
  // Gives the old socket back (a failure before the swap): the application
  // goes on with it.
  auto keep_old = [&] {
    if (names.empty())
      s->linger_fd = old_fd;
    else
      os_->Close(old_fd);
  };
  // Everything that can fail comes before waking a reader, which shuts the
  // socket's read side for good.
  int pair[2] = {-1, -1};
  if (!names.empty()) {
    absl::Status made = MakeSocketPair(pair);
    if (!made.ok()) {
      keep_old();
      return made;
    }
  }
  auto sample = probe_.Sample(old_fd);
  if (sample.ok()) {
    const bool foreign_bytes =
        s->maybe_shared.load() && s->resumes.load() == 0 &&
        sample->WrittenBytes(s->role == Role::kClient, s->shut_wr) !=
            s->sent_to_socket;
    if (foreign_bytes ||
        sample->AckedOffset(s->sent_to_socket, s->shut_wr) < s->ring.tail()) {
      // Another process (a child that shares the socket) wrote bytes this
      // ring does not hold: no exact failover is possible.
      for (int fd : pair) {
        if (fd >= 0) os_->Close(fd);
      }
      keep_old();
      return absl::DataLossError(
          "another process that shares the socket wrote bytes the peer may "
          "lack and this process does not hold");
    }
  }
  // The volume can fail too; past this point there is no way back to the TCP
  // socket.
  auto channel = OpenMyChannel(*s);
  if (!channel.ok()) {
    for (int fd : pair) {
      if (fd >= 0) os_->Close(fd);
    }
    keep_old();
    return channel.status();
  }
  // What a reader inside a receive takes belongs to the application: the
  // sample that says what it was delivered comes after them. Always a new
  // one: a reader may have left since the first.
  WaitOutTcpReaders(s, old_fd);
  sample = probe_.Sample(old_fd);
  // Where each direction stands, read from the old socket before anything else
  // moves.
  uint64_t failover_offset = s->ring.tail();
  uint64_t delivered = 0;
  if (sample.ok()) {
    // Bytes of the backlog a resume left unsent are not on the socket.
    failover_offset = std::max(
        s->ring.tail(), sample->AckedOffset(s->sent_to_socket, s->shut_wr));
    failover_offset = std::min(failover_offset, s->sent_to_socket);
    delivered = sample->delivered() + s->in_adjust;
    if (sample->state == TCP_CLOSE && sample->bytes_received > sample->inq) {
      // The probe cannot see a FIN in TCP_CLOSE; a FIN counts one in
      // bytes_received.
      delivered = sample->bytes_received - sample->inq -
                  (storage_path_.OrderlyClose(s, old_fd) ? 1 : 0) +
                  s->in_adjust;
    }
  } else {
    log_.Warn("session ", s->label, ": cannot read TCP_INFO at failover (",
              sample.status().message(),
              "); resending everything the ring holds");
  }
  // Before the swap: from the moment an fd names the pair, getpeername() and
  // getsockname() must answer with the connection's addresses, not the
  // pair's (an application woken by the swap asks at once).
  s->generation.fetch_add(1);
  if (!names.empty()) PutSocketPair(s, names, pair);
  // The old socket's file description is now the engine's alone: the loop reads
  // it without blocking.
  os_->Fcntl(old_fd, F_SETFL, O_NONBLOCK);
  // However it ends — our close, or the process's exit — the engine's close of
  // the old socket is a reset, never a FIN: an orderly FIN there is the peer
  // application's, always.
  const linger abortive{1, 0};
  os_->SetSockOpt(old_fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
  s->leg.old_sock = old_fd;
  s->leg.old_sock_open = true;
  {
    absl::MutexLock lock(&s->mu);
    s->old_sock_for_app = old_fd;
  }
  private_[s->leg.old_sock].store(1, std::memory_order_release);
  s->on_tcp = false;
  // A backlog still unsent and a FIN still owed travel on the volume instead.
  s->leg.app_wrote_eof = s->shut_wr || s->fin_owed;
  s->fin_owed = false;
  s->leg.old_read_offset = delivered;
  absl::Status started =
      StartStoragePath(s, failover_offset, delivered, std::move(*channel));
  if (!started.ok()) {
    // The application's fd names the pair and the old socket's read side may
    // be shut: the session cannot go back to TCP.
    return absl::AbortedError(
        absl::StrCat("the volume failed after the swap: ", started.message()));
  }
  return absl::OkStatus();
}

absl::Status EngineImpl::InstallSocketPair(Session* s,
                                           const std::vector<int>& names) {
  int pair[2];
  absl::Status made = MakeSocketPair(pair);
  if (!made.ok()) return made;
  PutSocketPair(s, names, pair);
  return absl::OkStatus();
}

absl::Status EngineImpl::MakeSocketPair(int pair[2]) {
  SysResult made =
      os_->SocketPair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
  if (!made.ok()) return absl::ErrnoToStatus(made.error, "socketpair");
  for (int i = 0; i < 2; ++i) {
    os_->SetSockOpt(pair[i], SOL_SOCKET, SO_SNDBUF, &kPairBufferBytes,
                    sizeof(kPairBufferBytes));
    os_->SetSockOpt(pair[i], SOL_SOCKET, SO_RCVBUF, &kPairBufferBytes,
                    sizeof(kPairBufferBytes));
  }
  os_->Fcntl(pair[1], F_SETFL, O_NONBLOCK);
  return absl::OkStatus();
}

void EngineImpl::PutSocketPair(Session* s, const std::vector<int>& names,
                               const int pair[2]) {
  const int status_flags =
      static_cast<int>(os_->Fcntl(names[0], F_GETFL, 0).value);
  CopyTimeouts(names[0], pair[0]);
  ReplaceFile(s, names, pair[0]);
  // File status flags belong to the open file description, which every name now
  // shares.
  os_->Fcntl(names[0], F_SETFL, status_flags & (O_NONBLOCK | O_APPEND));
  s->leg.app_end = pair[0];
  s->leg.eng_end = pair[1];
  private_[s->leg.app_end].store(1, std::memory_order_release);
  private_[s->leg.eng_end].store(1, std::memory_order_release);
}

void EngineImpl::CopyTimeouts(int from, int to) {
  for (int option : {SO_RCVTIMEO, SO_SNDTIMEO}) {
    timeval tv{};
    socklen_t len = sizeof(tv);
    if (os_->GetSockOpt(from, SOL_SOCKET, option, &tv, &len).ok()) {
      os_->SetSockOpt(to, SOL_SOCKET, option, &tv, len);
    }
  }
}

void EngineImpl::WaitOutTcpReaders(Session* s, int fd) {
  // A reader with bytes to take, or on a non-blocking socket, is out within
  // microseconds; only one waiting in the kernel for bytes needs waking.
  const absl::Time kick_at = absl::Now() + absl::Milliseconds(2);
  while (s->readers_on_tcp.load() > 0) {
    if (!s->leg.old_read_shut && absl::Now() >= kick_at) {
      os_->Shutdown(fd, SHUT_RD);
      s->leg.old_read_shut = true;
      log_.Debug("session ", s->label,
                 ": woke a receive blocked on the TCP socket");
    }
    absl::SleepFor(absl::Microseconds(50));  // a reader leaving the kernel
  }
}

void EngineImpl::ReplaceFile(Session* s, const std::vector<int>& names,
                             int fd_with_file) {
  absl::MutexLock lock(&table_.mu);
  for (int fd : names) {
    // epoll keys registrations on (fd, file): drop them while fd still names
    // the old file, so that its events never reach the application, and
    // re-add them after.
    const std::map<int, epoll_event>* regs = table_.EpollRegistrations(fd);
    if (regs != nullptr) {
      for (const auto& [epfd, ev] : *regs)
        os_->EpollCtl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    }
    const int fd_flags = static_cast<int>(os_->Fcntl(fd, F_GETFD, 0).value);
    SysResult d =
        os_->Dup3(fd_with_file, fd, (fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0);
    if (!d.ok())
      log_.Error("session ", s->label, ": dup3 failed: ", strerror(d.error));
    if (regs != nullptr) {
      for (const auto& [epfd, ev] : *regs) {
        epoll_event copy = ev;
        os_->EpollCtl(epfd, EPOLL_CTL_ADD, fd, &copy);
      }
    }
  }
}

}  // namespace diskwire
