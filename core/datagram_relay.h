// File: core/datagram_relay.h
// The process's UDP relay (docs/ARCHITECTURE.md, "Datagrams"). While the
// network carries datagrams to a peer host, selected datagrams go to it
// untouched and nothing reaches the volume. The relay probes each peer
// address the application sends to (core/datagram_paths.h); once a path is
// down, datagrams to it are appended to a channel per pair of processes,
// "u-<sender tag>-<receiver tag>", one record each, in the order sent; the
// receiver's relay tails the channels addressed to it and hands each
// datagram to its socket from the original sender's address and port
// (core/datagram_injector.h). When the path answers again, datagrams go back
// to the network. Each datagram takes exactly one path: none is duplicated.
//
// A socket takes datagrams over the volume when it is bound to a port that a
// UDP rule names, or once it sent a selected datagram (a client's port, for
// the answers): the heartbeat advertises it, so that a peer knows which
// process receives for an address and port.
//
// Thread safety: every public method is thread-safe. The relay's own thread
// probes, appends, tails and injects; the application's threads only queue.

#ifndef DISKWIRE_CORE_DATAGRAM_RELAY_H_
#define DISKWIRE_CORE_DATAGRAM_RELAY_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/datagram_injector.h"
#include "core/datagram_paths.h"
#include "core/listeners.h"
#include "core/log.h"
#include "core/os_calls.h"
#include "core/peer_directory.h"
#include "core/selector.h"
#include "core/session_report.h"
#include "core/sys_result.h"
#include "storage/file_ops.h"
#include "storage/volume.h"

namespace diskwire {

class DatagramRelay {
 public:
  // Engine::kMaxFds (core/engine.h depends on this file): fds at or above it
  // always take the lookups.
  static constexpr int kMaxFds = 1 << 16;

  struct Options {
    Selector select;
    bool storage_mode = false;  // DISKWIRE_MODE=storage: always the volume
    int64_t detect_ms = 2000;
    int64_t peer_timeout_ms = 10000;
    // Told of the relay's own fds (its eventfd, epoll, probe socket and volume
    // watcher), which a forked child then closes; null for none. Must outlive
    // the relay.
    storage::FdObserver* fd_observer = nullptr;
  };
  // REQUIRES: os, clock and log outlive the relay.
  DatagramRelay(const Options& options, OsCalls* os, const Clock* clock,
                Logger* log);
  ~DatagramRelay();
  DatagramRelay(const DatagramRelay&) = delete;
  DatagramRelay& operator=(const DatagramRelay&) = delete;

  // Starts the thread on these volumes (once; again after a fork), for the
  // process `process_id`; `peers` reads the heartbeats of `recv`.
  // `heartbeat_soon` asks the engine to publish its heartbeat early (a new
  // receiver to advertise). REQUIRES: the volumes and `peers` outlive the
  // relay.
  void Start(storage::Volume* send, storage::Volume* recv, PeerDirectory* peers,
             const std::string& process_id,
             std::function<void()> heartbeat_soon);

  // The application's socket `fd` (an IP UDP socket) was bound or connected.
  void OnAddressChange(int fd);
  void OnClose(int fd);
  // A datagram the application sends on `fd`: nullopt when it goes over the
  // network (the caller makes the real call), else what sendmsg returns.
  // `refused` is the errno of a real send that the network refused (no
  // route, interface down): the path is down at once.
  std::optional<SysResult> Carry(int fd, const msghdr* msg, int flags,
                                 int refused = 0);

  // The heartbeat's udp lines.
  void Fill(ProcessReport::Udp* out);

  // fork(): the child's relay starts afresh, with a new identity, on its
  // first use.
  void BeforeFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(mu_);
  void AfterForkParent() ABSL_UNLOCK_FUNCTION(mu_);
  void AfterForkChild() ABSL_UNLOCK_FUNCTION(mu_);

 private:
  struct Socket {
    sockaddr_storage local = {};  // port 0: not bound yet
    sockaddr_storage peer = {};   // AF_UNSPEC: not connected
    bool advertised = false;
    bool v6only = false;
  };
  // The healthy path without the lock: per fd, the key of the last
  // destination a send took to the network (its address and the epoch_ of
  // that decision), and until when the decision may be reused (the lookups
  // then run again, which also keep the path probed).
  struct FastSlot {
    std::atomic<uint64_t> key{0};
    std::atomic<int64_t> until_ns{0};
  };
  struct Peer {
    std::string tag;
    std::string host_key;  // core/host_identity.h
    uint16_t probe_port = 0;
    std::vector<MappedAddress> host;
    std::vector<ListenAddress> receivers;
    int64_t alive_ns = 0;  // when its heartbeat last changed, by our clock
  };
  struct Outbound {
    std::string channel;
    std::deque<std::string> queue;  // encoded datagrams (mu_)
    size_t queued_bytes = 0;        // (mu_)
    // The relay thread's alone:
    std::unique_ptr<storage::ChannelWriter> writer;
    uint64_t offset = 0;
    std::deque<std::pair<int64_t, uint64_t>> appended;  // (time, end offset)
  };
  struct Inbound {
    std::string channel;
    std::unique_ptr<storage::ChannelReader> reader;
    uint64_t next_offset = 0;
  };

  void ThreadMain();
  void Kick();
  // One pass of the thread's work.
  void RefreshPeers(int64_t now);
  void ReadProbes(int64_t now);
  void SendProbes(int64_t now);
  void FlushOutbound(int64_t now);
  void ReadInbound();
  // Tells Options::fd_observer of an fd the relay opened for itself, and of
  // one it is about to close.
  void Own(int fd);
  void Forget(int fd);
  void OpenProbeSocket() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The live peer process that receives datagrams sent to `dest`.
  const Peer* ReceiverFor(const sockaddr_storage& dest, std::string* process,
                          int64_t now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshSocket(int fd, Socket* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The address the kernel would send from to reach `dest`.
  std::optional<MappedAddress> SourceFor(const sockaddr_storage& dest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Alive(const Peer& p, int64_t now) const {
    return now - p.alive_ns < options_.peer_timeout_ms * 1'000'000;
  }

  const Options options_;
  OsCalls* const os_;
  const Clock* const clock_;
  Logger* const log_;

  absl::Mutex mu_;
  storage::Volume* send_ ABSL_GUARDED_BY(mu_) = nullptr;
  storage::Volume* recv_ ABSL_GUARDED_BY(mu_) = nullptr;
  PeerDirectory* directory_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string process_id_ ABSL_GUARDED_BY(mu_);
  std::string tag_ ABSL_GUARDED_BY(mu_);
  std::string host_key_ ABSL_GUARDED_BY(mu_);  // this host's
  std::function<void()> heartbeat_soon_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int, Socket> sockets_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Outbound> out_ ABSL_GUARDED_BY(mu_);
  DatagramPaths paths_ ABSL_GUARDED_BY(mu_);
  std::map<DatagramPaths::Address, uint16_t> probe_ports_ ABSL_GUARDED_BY(mu_);
  std::map<DatagramPaths::Address, MappedAddress> sources_ ABSL_GUARDED_BY(mu_);
  // Probes in flight: sequence → (address, sent).
  std::map<uint64_t, DatagramPaths::Address> probes_ ABSL_GUARDED_BY(mu_);
  uint16_t probe_port_ ABSL_GUARDED_BY(mu_) = 0;
  // Moves whenever a path goes down or up or the peers' receivers change
  // (under mu_); read without it by the healthy path.
  std::atomic<uint64_t> epoch_{1};
  std::unique_ptr<FastSlot[]> fast_;  // kMaxFds of them
  std::string peers_signature_ ABSL_GUARDED_BY(mu_);

  // The thread's own.
  std::thread thread_;
  int kick_fd_ = -1;
  int probe_fd_ = -1;
  bool probe_v6_ = false;  // dual stack: IPv4 peers in their mapped form
  int epoll_fd_ = -1;
  uint64_t nonce_ = 0;
  uint64_t sequence_ = 0;
  int64_t next_refresh_ns_ = 0;
  std::unique_ptr<storage::VolumeWatcher> watcher_;
  std::map<std::string, Inbound> in_;  // by peer process id
  DatagramInjector injector_;
  bool injector_failed_ = false;

  std::atomic<uint64_t> out_storage_{0};
  std::atomic<uint64_t> in_storage_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_DATAGRAM_RELAY_H_
