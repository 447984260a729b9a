// StoragePath, inbound: the peer's bytes, from the old socket and the peer's
// channel into the reassembly, and from there into the application's end of
// the pair, as far as the application reads.

#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "core/identity.h"
#include "core/resume_handshake.h"
#include "core/storage_path.h"

namespace diskwire {

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
          if (s->leg.first_storage_byte_ns == 0) NoteFirstStorageByte(s);
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
      FutexLockHolder lock(&s->send_mu);
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

void StoragePath::NoteFirstStorageByte(Session* s) {
  const int64_t now = clock_->NowNs();
  s->leg.first_storage_byte_ns = now;
  if (s->stopped_ns == 0) {
    // Storage mode, or opened over the volume: no outage to time.
    log_->Info("session ", s->label, ": first byte via storage ",
               (now - s->detected_ns) / 1'000'000,
               " ms after the session moved to it");
    return;
  }
  log_->Info("session ", s->label, ": first byte via storage ",
             (now - s->stopped_ns) / 1'000'000,
             " ms after the network stopped carrying it (",
             (s->detected_ns - s->stopped_ns) / 1'000'000,
             " ms of them to detect it; realtime_ns=", clock_->RealtimeNs(),
             ")");
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
    absl::MutexLock lock(&s->mu);
    s->eof_queued = true;
    log_->Debug("session ", s->label, ": end of file delivered at ",
                s->delivered);
  }
  // The writer decides when the ack needs a record of its own.
  s->leg.out->SubmitAck(ConsumedOffset(s));
}

}  // namespace diskwire
