#include "core/storage_path.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace diskwire {
namespace {

// The writer's buffer per session: reading the socket pair stops when it is
// full.
const size_t kWriterBufferBytes = WriterOptions{}.buffer_bytes;

}  // namespace

void StoragePath::PumpAppToVolume(Session* s) {
  if (s->state.load() != SessionState::kStorage) return;
  char buf[64 << 10];
  {
    FutexLockHolder lock(&s->send_mu);
    if (s->leg.eng_end < 0) {
      // The application closed the socket before the failover (a lingering
      // session): nothing more comes from it, but what the ring holds and the
      // FIN still go, as the writer's buffer makes room.
      SubmitToWriter(s);
      return;
    }
    // Read the application's bytes into the ring while it and the writer's
    // buffer have room: a full one stops the reading, and the socket pair
    // pushes back on the application.
    while (!s->leg.app_wrote_eof &&
           s->leg.out->buffered_bytes() < kWriterBufferBytes) {
      size_t room = std::min(s->ring.Free(), sizeof(buf));
      if (room == 0) break;
      SysResult r = os_->Read(s->leg.eng_end, buf, room);
      if (r.ok() && r.value > 0) {
        s->ring.Append(absl::string_view(buf, r.value));
        SubmitToWriter(s);
        continue;
      }
      if (r.ok() && r.value == 0) {
        log_->Debug("session ", s->label,
                    ": the application shut down writing at ", s->ring.head());
        s->leg.app_wrote_eof = true;
      }
      if (!r.ok() && r.error != EAGAIN && r.error != EINTR)
        s->leg.app_wrote_eof = true;
      break;
    }
    SubmitToWriter(s);
  }
  UpdateEventMask(s);
}

void StoragePath::SubmitToWriter(Session* s) {
  while (s->leg.next_to_volume < s->ring.head()) {
    auto view = s->ring.ViewFrom(s->leg.next_to_volume,
                                 s->ring.head() - s->leg.next_to_volume);
    if (!view.ok()) {
      log_->Error("session ", s->label,
                  ": replay ring: ", view.status().message());
      return;
    }
    absl::StatusOr<size_t> taken =
        s->leg.out->TrySubmitData(s->leg.next_to_volume, view->first);
    if (!taken.ok()) {
      log_->Error("session ", s->label, ": writer: ", taken.status().message());
      return;
    }
    s->leg.next_to_volume += *taken;
    if (*taken < view->first.size())
      return;  // the writer's buffer is full: its callback kicks
  }
  if (s->leg.app_wrote_eof && !s->leg.fin_sent) {
    absl::Status fin =
        s->leg.out->SubmitControl(storage::RecordType::kFin, s->ring.head());
    if (fin.ok()) {
      log_->Debug("session ", s->label, ": FIN at ", s->ring.head());
      s->leg.fin_sent = true;
    } else {
      log_->Error("session ", s->label, ": writer: ", fin.message());
    }
  }
}

void StoragePath::UpdateEventMask(Session* s) {
  if (s->leg.eng_end < 0 || !s->leg.eng_in_loop) return;
  uint32_t events = 0;
  {
    FutexLockHolder lock(&s->send_mu);
    if (!s->leg.app_wrote_eof && s->ring.Free() > 0 &&
        s->leg.out->buffered_bytes() < kWriterBufferBytes) {
      events |= EPOLLIN;
    }
  }
  if (s->leg.want_eng_out) events |= EPOLLOUT;
  host_->LoopMod(s->leg.eng_end, s, events);
}

bool StoragePath::OrderlyClose(Session* s, int fd) {
  // TCP_CLOSE follows an abort (a timeout, a reset: no FIN) but also an orderly
  // close of both sides while the application still held the socket (the
  // kernel's time-wait takeover). Only the pending error tells them apart, and
  // reading it clears it: remember the answer.
  if (s->leg.old_close_orderly < 0) {
    auto error = probe_->PendingError(fd);
    s->leg.old_close_orderly =
        !s->abort_consumed.load() && error.ok() && *error == 0 ? 1 : 0;
  }
  return s->leg.old_close_orderly == 1;
}

bool StoragePath::OrderlyEndOfFile(Session* s, int fd) {
  // A read of 0 follows a FIN, but also a connection the kernel aborted: only
  // the states a FIN leads to make it the peer application's end of stream.
  auto sample = probe_->Sample(fd);
  if (!sample.ok()) return false;
  switch (sample->state) {
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
    case TCP_TIME_WAIT:
      return true;
    case TCP_CLOSE:
      return OrderlyClose(s, fd);
    default:
      return false;
  }
}

bool StoragePath::StillConnected(int fd) {
  auto sample = probe_->Sample(fd);
  if (!sample.ok()) return false;
  return sample->state == TCP_ESTABLISHED || sample->state == TCP_FIN_WAIT1 ||
         sample->state == TCP_FIN_WAIT2;
}

void StoragePath::CloseOldSocket(Session* s) {
  host_->LoopDel(s->leg.old_sock);
  if (s->plain_peer) {
    // No diskwire at the other end: it gets what TCP gives when a server
    // goes away, an end of file. (Unread bytes would make the kernel send a
    // reset instead: they are read and dropped first.)
    char sink[4096];
    iovec iov{sink, sizeof(sink)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    while (os_->RecvMsg(s->leg.old_sock, &msg, MSG_DONTWAIT).value > 0) {
    }
    const linger orderly{0, 0};  // Swap set an abortive close
    os_->SetSockOpt(s->leg.old_sock, SOL_SOCKET, SO_LINGER, &orderly,
                    sizeof(orderly));
    os_->Shutdown(s->leg.old_sock, SHUT_WR);
  } else {
    // An abortive close: the peer's engine holds its own old socket and must
    // never take an orderly FIN from us for its application's end of file.
    const linger abortive{1, 0};
    os_->SetSockOpt(s->leg.old_sock, SOL_SOCKET, SO_LINGER, &abortive,
                    sizeof(abortive));
  }
  {
    absl::MutexLock lock(&s->mu);  // no getsockopt of the application on it
    s->old_sock_for_app = -1;
  }
  host_->ReleasePrivate(s->leg.old_sock);
  os_->Close(s->leg.old_sock);
  s->leg.old_sock_open = false;
}

void StoragePath::ResetOverStorage(Session* s, int error,
                                   const std::string& why) {
  {
    FutexLockHolder lock(&s->send_mu);
    if (s->leg.out != nullptr) {
      s->leg.fin_sent = true;  // a reset instead, or after it
      absl::Status rst =
          s->leg.out->SubmitControl(storage::RecordType::kRst, s->ring.head());
      if (!rst.ok())
        log_->Error("session ", s->label, ": writer: ", rst.message());
    }
  }
  host_->EndSession(s, error, absl::StrCat(why, "; reset sent to the peer"));
}

void StoragePath::MaybeFinish(Session* s) {
  if (s->state.load() != SessionState::kStorage) return;
  bool app_gone;
  {
    absl::MutexLock lock(&s->mu);
    app_gone = s->names.empty();
  }
  bool sent_all;
  {
    FutexLockHolder lock(&s->send_mu);
    sent_all = s->leg.fin_sent && s->peer_ack >= s->ring.head() &&
               s->leg.out->buffered_bytes() == 0;
  }
  if (!(app_gone && sent_all && (s->leg.eof_delivered || s->leg.peer_fin)))
    return;
  // The last word to the peer: everything that arrived counts as read now
  // (what the application left unread went with its close, as a kernel's
  // receive queue would). Without it the peer may never learn that its last
  // bytes arrived, and waits for that ack with its channel on the volume.
  s->leg.out->SubmitAck(s->delivered);
  host_->EndSession(s, 0, "both directions finished");
}

}  // namespace diskwire
