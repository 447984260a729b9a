// File: core/storage_path.h
// The storage path of sessions in STORAGE, run on the engine loop: the
// application's bytes from the socket pair into the ring and to the writer
// thread; the old socket and the peer's channel into one reassembly, and from
// it to the socket pair; the end of each direction. It works on a session's
// StorageLeg (core/storage_leg.h) and asks the engine that owns it
// (StoragePath::Host) for what only the engine can do: the loop's epoll, the
// engine's private descriptors, the watcher, ending a session.
//
// Thread safety: the engine loop's thread only (exit_drain.cc calls it on the
// exiting thread once the loop stopped).

#ifndef DISKWIRE_CORE_STORAGE_PATH_H_
#define DISKWIRE_CORE_STORAGE_PATH_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "core/clock.h"
#include "core/log.h"
#include "core/os_calls.h"
#include "core/session.h"
#include "core/tcp_probe.h"

namespace diskwire {

class StoragePath {
 public:
  // What the storage path needs of the engine that owns it.
  class Host {
   public:
    virtual ~Host() = default;
    // The loop's interest in `fd`, one of the session's descriptors.
    virtual void LoopMod(int fd, Session* s, uint32_t events) = 0;
    virtual void LoopDel(int fd) = 0;
    // `fd` is about to be closed: no longer one of the engine's own.
    virtual void ReleasePrivate(int fd) = 0;
    // The peer removed the channel `s` reads: stop watching it.
    virtual void ForgetPeerChannel(Session* s) = 0;
    virtual void EndSession(Session* s, int error, const std::string& why) = 0;
  };

  // All pointers must outlive this object. `rejected`: the engine's count of
  // records read from the volume and refused.
  StoragePath(Host* host, OsCalls* os, const Clock* clock, Logger* log,
              TcpProbe* probe, int64_t max_lag_ms,
              std::atomic<uint64_t>* rejected)
      : host_(host),
        os_(os),
        clock_(clock),
        log_(log),
        probe_(probe),
        max_lag_ms_(max_lag_ms),
        rejected_(rejected) {}

  // The application's bytes: from the pair into the ring, to the writer.
  void PumpAppToVolume(Session* s);
  // Hands the ring's bytes from next_to_volume on, and a FIN when due, to the
  // writer thread.
  void SubmitToWriter(Session* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->send_mu);
  // The loop's interest in the pair: readable while the ring and the writer
  // have room, writable while bytes wait for it.
  void UpdateEventMask(Session* s);

  // The peer's bytes: from the old socket, then its channel, into the
  // reassembly, and from there into the pair.
  void DrainOldSocket(Session* s);
  void ReadPeerChannel(Session* s);
  void PumpVolumeToApp(Session* s);
  // Closes the session's old TCP socket: abortively (the peer's engine must
  // never read our FIN as its application's end of file), or with a FIN when
  // no diskwire peer holds the session (StorageLeg via Session::plain_peer).
  void CloseOldSocket(Session* s);
  // The stream offset the application has read: delivered less what waits
  // unread in the pair. The ack offset this side sends.
  uint64_t ConsumedOffset(Session* s);
  // For an old socket in TCP_CLOSE: was it closed by FINs both ways (not
  // aborted)? Remembered, as reading the pending error clears it.
  bool OrderlyClose(Session* s, int fd);

  // A reset record instead of the FIN, and the session ends.
  void ResetOverStorage(Session* s, int error, const std::string& why);
  // Ends the session once both directions are finished and the application
  // let go of it.
  void MaybeFinish(Session* s);

 private:
  // Did the old socket's end of file come from the peer's FIN (not from an
  // abort)?
  bool OrderlyEndOfFile(Session* s, int fd);
  // Can the TCP connection still bring bytes (established, or only our side
  // closed)?
  bool StillConnected(int fd);
  // For an old socket that is an abandoned resume link: reads the peer's
  // COMMIT or ABORT; true when a COMMIT was read (stream bytes follow).
  bool ReadOldCommit(Session* s);
  // Logs how long the first byte over the volume took: from the outage, or
  // from the move to the volume when there was none.
  void NoteFirstStorageByte(Session* s);
  // Says (at most every 10 s) that a record's lag broke DISKWIRE_MAX_LAG_MS.
  void NoteLag(Session* s, int64_t lag_us);

  Host* const host_;
  OsCalls* const os_;
  const Clock* const clock_;
  Logger* const log_;
  TcpProbe* const probe_;
  const int64_t max_lag_ms_;
  std::atomic<uint64_t>* const rejected_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_STORAGE_PATH_H_
