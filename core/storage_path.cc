#include "core/storage_path.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "core/identity.h"
#include "core/resume_handshake.h"

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
    absl::MutexLock lock(&s->send_mu);
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
    absl::MutexLock lock(&s->send_mu);
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

bool StoragePath::ReadOldCommit(Session* s) {
  // A resume link the peer may have committed on: its next message is COMMIT
  // (stream bytes follow) or ABORT (nothing follows).
  const size_t want = ResumeMessageSize("DWC");
  while (s->leg.old_prefix.size() < want) {
    char buf[64];
    SysResult r =
        os_->Read(s->leg.old_sock, buf, want - s->leg.old_prefix.size());
    if (r.ok() && r.value > 0) {
      s->leg.old_prefix.append(buf, r.value);
      continue;
    }
    if (!r.ok() && (r.error == EAGAIN || r.error == EINTR)) return false;
    s->leg.old_expects_commit = false;  // the link ended before a commit
    return false;
  }
  s->leg.old_expects_commit = false;
  const bool committed =
      s->leg.old_prefix[2] == static_cast<char>(ResumeKind::kCommit);
  log_->Debug("session ", s->label, ": the abandoned link says ",
              committed ? "commit" : "abort");
  return committed;
}

void StoragePath::DrainOldSocket(Session* s) {
  if (!s->leg.old_sock_open) return;
  char buf[64 << 10];
  bool close_it = false;
  if (s->leg.old_expects_commit && !ReadOldCommit(s) &&
      !s->leg.old_expects_commit) {
    close_it = true;  // an abort: no stream bytes on this socket
  }
  while (!close_it && !s->leg.old_expects_commit) {
    // What the reassembly has no room for stays in the kernel until the
    // application reads (the loop comes back: read_more).
    const uint64_t end = s->leg.reassembly->window_end();
    if (s->leg.old_read_offset >= end) {
      s->leg.read_more = true;
      break;
    }
    SysResult r = os_->Read(
        s->leg.old_sock, buf,
        std::min<uint64_t>(sizeof(buf), end - s->leg.old_read_offset));
    if (r.ok() && r.value > 0) {
      absl::Status offered = s->leg.reassembly->Offer(
          s->leg.old_read_offset, absl::string_view(buf, r.value));
      if (!offered.ok()) {
        log_->Error("session ", s->label, ": old socket: ", offered.message());
        close_it = true;
        break;
      }
      s->leg.old_read_offset += r.value;
      s->bytes_in_network.fetch_add(r.value, std::memory_order_relaxed);
      continue;
    }
    if (r.ok() && r.value == 0 && !s->leg.peer_fin) {
      if (OrderlyEndOfFile(s, s->leg.old_sock)) {
        // The peer application's FIN, sent while it was DIRECT (an engine
        // never closes an old socket with a FIN): its stream ends here.
        s->leg.peer_fin = true;
        s->leg.peer_fin_offset = s->leg.old_read_offset;
      } else if (s->leg.old_read_shut && StillConnected(s->leg.old_sock)) {
        break;  // the swap's SHUT_RD, not an end: bytes may still come
      }
    }
    if (r.ok() || (r.error != EAGAIN && r.error != EINTR))
      close_it = true;  // EOF or error

    break;
  }
  // Once the peer has moved (it announced) and everything below its failover
  // offset is here, the old socket has nothing more to give.
  if (s->leg.peer_announced &&
      s->leg.reassembly->next_offset() >= s->leg.peer_failover_offset) {
    close_it = true;
  }
  if (close_it) {
    log_->Debug("session ", s->label, ": old socket done at ",
                s->leg.old_read_offset, ", next ",
                s->leg.reassembly->next_offset());
    CloseOldSocket(s);
  }
  PumpVolumeToApp(s);
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
    absl::MutexLock lock(&s->send_mu);
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

void StoragePath::ReadPeerChannel(Session* s) {
  if (s->state.load() != SessionState::kStorage) return;
  if (s->leg.reader == nullptr) {
    // Not known yet, or between two episodes; the old socket may still have
    // bytes the reassembly had no room for (read_more).
    if (s->leg.old_sock_open) DrainOldSocket(s);
    return;
  }
  std::vector<storage::Record> records;
  const bool again = !s->leg.parked.empty();
  absl::StatusOr<size_t> got = 0;
  if (again) {
    records.swap(s->leg.parked);
    PumpVolumeToApp(s);  // the room the application made since
  } else {
    // Bytes that came over the old socket may already be trimmed from the
    // channel: the peer acknowledged them.
    s->leg.reader->SkipTo(s->leg.reassembly->contiguous_end());
    constexpr size_t kMaxRead = 4 << 20;
    got = s->leg.reader->ReadAvailable(&records, kMaxRead);
    size_t bytes = 0;
    for (const storage::Record& r : records) bytes += r.payload.size();
    // (A reader stops at about the limit, headers counted or not.)
    s->leg.read_more = got.ok() && bytes >= kMaxRead / 2;
  }
  if (absl::IsNotFound(got.status())) {
    // The peer removed its channel: it moved to a new episode (a resume that
    // broke, a new failover) and its announcement names the next channel;
    // what this side had not read comes again there, from what it
    // delivered. CheckPeers bounds the wait.
    log_->Info("session ", s->label,
               ": the peer removed its channel of episode ", s->episode,
               "; waiting for its next one");
    host_->ForgetPeerChannel(s);
    s->leg.reader.reset();
    s->leg.parked.clear();
    s->leg.peer_channel_gone_ns = clock_->NowNs();
    return;
  }
  if (!got.ok()) {
    // A corrupt, foreign or unauthenticated record: never delivered.
    rejected_->fetch_add(1, std::memory_order_relaxed);
    ResetOverStorage(s, EIO,
                     absl::StrCat("the peer's channel is unreadable: ",
                                  got.status().message()));
    return;
  }
  if (!records.empty()) s->leg.peer_read_ns = clock_->NowNs();
  const uint8_t peer_dir =
      SendDirection(s->role == Role::kClient ? Role::kServer : Role::kClient);
  const int64_t now_real = clock_->RealtimeNs();
  uint64_t peer_ack = s->peer_ack;
  for (size_t i = 0; i < records.size(); ++i) {
    storage::Record& r = records[i];
    if (!(r.header.session_id == s->id) || r.header.direction != peer_dir) {
      log_->Error("session ", s->label,
                  ": rejected a record of another session or direction");
      rejected_->fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    peer_ack = std::max(peer_ack, r.header.ack_offset);
    const int64_t lag_us =
        (now_real - static_cast<int64_t>(r.header.timestamp_ns)) / 1000;
    if (!again) NoteLag(s, lag_us);  // not the application's pause
    if (r.header.type == storage::RecordType::kData &&
        r.header.stream_offset + r.payload.size() >
            s->leg.reassembly->window_end()) {
      // The application has not read what comes before: this record and
      // the rest wait, in order, until it has (the peer writes up to its
      // ring ahead of what it knows delivered, the old socket may hold a
      // receive queue more).
      s->leg.parked.assign(std::make_move_iterator(records.begin() + i),
                           std::make_move_iterator(records.end()));
      break;
    }
    switch (r.header.type) {
      case storage::RecordType::kFailover:
        log_->Debug("session ", s->label, ": peer failover offset ",
                    r.header.stream_offset);
        s->leg.peer_announced = true;
        s->leg.peer_failover_offset = r.header.stream_offset;
        break;
      case storage::RecordType::kData: {
        const uint64_t before = s->leg.reassembly->contiguous_end();
        absl::Status offered =
            s->leg.reassembly->Offer(r.header.stream_offset, r.payload);
        if (!offered.ok()) {
          ResetOverStorage(s, EIO,
                           absl::StrCat("reassembly: ", offered.message()));
          return;
        }
        const uint64_t after = s->leg.reassembly->contiguous_end();
        if (after > before) {
          s->bytes_in_storage.fetch_add(after - before,
                                        std::memory_order_relaxed);
          if (s->leg.first_storage_byte_ns == 0 && s->stopped_ns == 0) {
            // Storage mode, or opened over the volume: no outage to time.
            s->leg.first_storage_byte_ns = clock_->NowNs();
            log_->Info(
                "session ", s->label, ": first byte via storage ",
                (s->leg.first_storage_byte_ns - s->detected_ns) / 1'000'000,
                " ms after the session moved to it");
          } else if (s->leg.first_storage_byte_ns == 0) {
            s->leg.first_storage_byte_ns = clock_->NowNs();
            const int64_t since = s->stopped_ns;
            log_->Info("session ", s->label, ": first byte via storage ",
                       (s->leg.first_storage_byte_ns - since) / 1'000'000,
                       " ms after the network stopped carrying it (",
                       (s->detected_ns - since) / 1'000'000,
                       " ms of them to detect it; realtime_ns=",
                       clock_->RealtimeNs(), ")");
          }
        }
        break;
      }
      case storage::RecordType::kFin:
        log_->Debug("session ", s->label, ": peer FIN at ",
                    r.header.stream_offset);
        s->leg.peer_fin = true;
        s->leg.peer_fin_offset = r.header.stream_offset;
        break;
      case storage::RecordType::kRst:
        host_->EndSession(s, ECONNRESET, "the peer reset the connection");
        return;
      default:
        break;
    }
  }
  if (peer_ack > s->peer_ack) {
    s->peer_ack = peer_ack;
    {
      absl::MutexLock lock(&s->send_mu);
      // Not past what the writer has taken: its DATA must stay contiguous (the
      // peer discards what it already holds).
      (void)s->ring.TrimTo(std::min(peer_ack, s->leg.next_to_volume));
    }
    if (s->leg.out != nullptr) s->leg.out->RequestTrim(peer_ack);
    UpdateEventMask(s);
  }
  if (s->leg.old_sock_open)
    DrainOldSocket(s);  // the peer's announcement may end the drain
  PumpVolumeToApp(s);
  if (s->leg.parked.empty()) return;
  s->leg.read_more = true;  // offered again at the loop's next pass
  if (s->leg.reassembly->Peek().empty() && !s->leg.old_sock_open) {
    // Nothing before the parked bytes will ever come: a broken peer.
    const storage::Record& first = s->leg.parked.front();
    ResetOverStorage(
        s, EIO,
        absl::StrCat("reassembly: piece at ", first.header.stream_offset,
                     " of ", first.payload.size(),
                     " bytes is beyond the window and nothing before it "
                     "arrives (delivered ",
                     s->leg.reassembly->next_offset(), ")"));
  }
}

void StoragePath::NoteLag(Session* s, int64_t lag_us) {
  s->lag.Add(lag_us);
  if (lag_us <= max_lag_ms_ * 1000) return;
  // Claim 12's bound is broken: say so, but not for every record.
  ++s->lag_over_count;
  const int64_t now = clock_->NowNs();
  if (now >= s->next_lag_warning_ns) {
    s->next_lag_warning_ns = now + 10'000'000'000;
    log_->Warn("session ", s->label, ": storage-path lag ", lag_us / 1000,
               " ms is above DISKWIRE_MAX_LAG_MS=", max_lag_ms_, " (",
               s->lag_over_count, " records over so far)");
  }
}

uint64_t StoragePath::ConsumedOffset(Session* s) {
  // What waits unread in the application's end of the pair is not delivered
  // yet for the peer: a resume takes it back, and the peer must still hold it.
  int unread = 0;
  if (s->leg.app_end < 0 ||
      !os_->Ioctl(s->leg.app_end, FIONREAD, &unread).ok() || unread < 0) {
    return s->delivered;
  }
  return s->delivered - std::min<uint64_t>(s->delivered, unread);
}

void StoragePath::PumpVolumeToApp(Session* s) {
  if (s->leg.reassembly == nullptr || s->state.load() != SessionState::kStorage)
    return;
  if (s->leg.eng_end < 0) {
    // The application closed the socket before the failover: what arrives is
    // dropped, as TCP drops it, and acknowledged so that the peer is never held
    // up.
    const size_t n = s->leg.reassembly->Peek().size();
    s->leg.reassembly->Consume(n);
    s->delivered += n;
    s->leg.out->SubmitAck(s->delivered);
    return;
  }
  while (true) {
    absl::string_view ready = s->leg.reassembly->Peek();
    if (ready.empty()) break;
    iovec iov{const_cast<char*>(ready.data()), ready.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = os_->SendMsg(s->leg.eng_end, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r.ok()) {
      s->leg.reassembly->Consume(r.value);
      s->delivered += r.value;
      continue;
    }
    if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      if (!s->leg.want_eng_out) {
        s->leg.want_eng_out = true;
        UpdateEventMask(s);
      }
      break;
    }
    // The application no longer reads (it closed its end): what arrives is
    // dropped, as TCP would drop it, but it still counts as delivered so that
    // the peer is not held up.
    s->leg.reassembly->Consume(ready.size());
    s->delivered += ready.size();
  }
  if (s->leg.peer_fin && !s->leg.eof_delivered &&
      s->delivered >= s->leg.peer_fin_offset) {
    os_->Shutdown(s->leg.eng_end, SHUT_WR);
    s->leg.eof_delivered = true;
    log_->Debug("session ", s->label, ": end of file delivered at ",
                s->delivered);
  }
  // The writer decides when the ack needs a record of its own.
  s->leg.out->SubmitAck(ConsumedOffset(s));
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
    absl::MutexLock lock(&s->send_mu);
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
