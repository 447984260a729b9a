// File: core/storage_leg.h
// What a session has while its stream goes over the volume, and only then:
// the socket pair that stands in for its TCP socket, the old socket drained
// after the swap, its outbound channel and the writer's queue for it, the
// reader and reassembly of the peer's channel, and where each direction
// stands. The engine loop is its only user (the swap fills it in before the
// loop sees the session). It is released as one object when the session goes
// back to the network or ends (EngineImpl::ReleaseStorageState), so that no
// episode inherits a field the previous one forgot to reset.

#ifndef DISKWIRE_CORE_STORAGE_LEG_H_
#define DISKWIRE_CORE_STORAGE_LEG_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/reassembly.h"
#include "core/writer.h"
#include "storage/volume.h"

namespace diskwire {

struct StorageLeg {
  // --- The application's side: the socket pair. ---
  int eng_end = -1;  // the engine's end of the socket pair
  // The engine's own name for the application's end of the pair: how many
  // bytes wait there unread (FIONREAD) and, at a resume, taking them back.
  int app_end = -1;
  bool eng_in_loop = true;     // eng_end is in the loop's epoll
  bool want_eng_out = false;   // waiting for room in eng_end
  bool app_wrote_eof = false;  // eng_end read EOF: the application shut down
                               // writing

  // --- The old socket: the TCP connection, drained after the swap. ---
  int old_sock = -1;
  bool old_sock_open = false;
  uint64_t old_read_offset = 0;  // stream offset of its next byte
  // It is a resume connection that failed mid-handshake: its first bytes are
  // the peer's COMMIT, and stream bytes follow from old_read_offset only if it
  // is one.
  bool old_expects_commit = false;
  std::string old_prefix;  // the commit read so far
  // In TCP_CLOSE: -1 unknown, 0 aborted, 1 ended by FIN (see OrderlyClose).
  int old_close_orderly = -1;
  // The swap shut its read side to wake a blocked reader: a read of 0 there
  // is no end of stream while the connection is open, and the loop watches
  // it edge-triggered (it stays readable).
  bool old_read_shut = false;

  // --- Outbound: this side's channel. ---
  std::unique_ptr<storage::ChannelWriter> channel;
  std::shared_ptr<OutboundChannel> out;  // the writer thread's queues for it
  uint64_t next_to_volume = 0;           // next ring offset to submit as DATA
  bool fin_sent = false;                 // FIN record submitted at ring.head()
  bool volume_writes_ok = true;          // as last logged (NoteVolumeWrites)
  // The writer made room in this session's buffer (its callback, on the
  // writer's thread): the loop reads the socket pair again. Shared with the
  // callback, which may outlive the leg.
  std::shared_ptr<std::atomic<bool>> pump_owed =
      std::make_shared<std::atomic<bool>>(false);

  // --- Inbound: the peer's channel and the old socket, reassembled. ---
  std::unique_ptr<storage::ChannelReader> reader;
  std::unique_ptr<Reassembly> reassembly;
  // When the peer removed the channel `reader` tailed (it moved to a new
  // episode); 0 while it has one.
  int64_t peer_channel_gone_ns = 0;
  bool peer_announced = false;  // the peer's FAILOVER record was read
  uint64_t peer_failover_offset = 0;
  bool peer_fin = false;
  uint64_t peer_fin_offset = 0;
  bool eof_delivered = false;
  // When a record of the peer's channel was last read (monotonic): a channel
  // still yielding records is a stream still arriving, whatever became of the
  // process that wrote it.
  int64_t peer_read_ns = 0;
  // The last read of the peer's channel stopped at its size limit: more
  // waits, without a change the watcher would report.
  bool read_more = false;
  // Records read from the peer's channel that the reassembly had no room
  // for yet (the application has not read what comes before them): offered
  // again, in order and before anything newer, once it has. From `reader`.
  std::vector<storage::Record> parked;
  int64_t first_storage_byte_ns = 0;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_STORAGE_LEG_H_
