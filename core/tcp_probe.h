// File: core/tcp_probe.h
// Reads what the kernel knows about a TCP connection (TCP_INFO, SIOCOUTQ,
// FIONREAD, SO_ERROR) and tunes a selected socket so that the kernel notices a
// dead path within the detection bound on an idle connection (keepalive).
//
// Facts this relies on, verified on a real loopback connection by
// tcp_probe_test.cc (see that file for the exact checks):
//  - tcpi_bytes_acked is NOT a stream offset: on the connecting side it
//    counts the SYN (1 on a fresh connection; 0 on the accepting side), and
//    it counts our FIN once acknowledged. SIOCOUTQ (write_seq - snd_una) is
//    exact: the peer kernel holds every written byte but the last SIOCOUTQ
//    (minus an unacknowledged FIN of ours). Use TcpSample::AckedOffset();
//  - the peer kernel has received every byte below AckedOffset();
//  - bytes_received - FIONREAD == bytes the application has read, while the
//    connection is open; after the peer's FIN it is one more (the FIN's
//    sequence number counts in bytes_received until the application reads
//    the end of file): use TcpSample::delivered(). One case it cannot see: a
//    FIN followed by an RST leaves state CLOSE with the FIN still counted,
//    so delivered() is one too high; draining the socket then ends in EOF
//    (read() == 0) rather than ECONNRESET, which tells the two apart;
//  - after the peer resets the connection, the bytes queued for reading stay
//    readable.

#ifndef DISKWIRE_CORE_TCP_PROBE_H_
#define DISKWIRE_CORE_TCP_PROBE_H_

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/failure_detector.h"
#include "core/os_calls.h"

namespace diskwire {

// tcpi_state values (the kernel's include/net/tcp_states.h, not in uapi).
enum TcpState : uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent = 2,
  kTcpSynRecv = 3,
  kTcpFinWait1 = 4,
  kTcpFinWait2 = 5,
  kTcpTimeWait = 6,
  kTcpClose = 7,
  kTcpCloseWait = 8,
  kTcpLastAck = 9,
  kTcpListen = 10,
  kTcpClosing = 11,
};

// One reading of a connected TCP socket.
struct TcpSample {
  uint8_t state = 0;              // tcpi_state (TCP_ESTABLISHED, ...)
  uint64_t bytes_acked = 0;       // sent bytes the peer kernel acknowledged
  uint64_t bytes_received = 0;    // tcpi_bytes_received (counts a FIN as 1)
  uint32_t notsent_bytes = 0;     // written, not yet transmitted
  uint32_t unacked_segments = 0;  // tcpi_unacked
  uint32_t last_ack_recv_ms = 0;  // ms since the last ACK arrived
  uint32_t last_data_recv_ms = 0;
  uint8_t retransmits = 0;    // tcpi_retransmits: timeouts in a row
  uint8_t probes = 0;         // tcpi_probes: unanswered zero-window probes
  bool window_known = false;  // the kernel reports tcpi_snd_wnd (>= 6.2)
  uint32_t peer_window = 0;   // tcpi_snd_wnd: the peer's advertised window
  uint32_t outq = 0;          // SIOCOUTQ: written, not yet acknowledged
  uint32_t inq = 0;           // FIONREAD: readable bytes (FIN excluded)
  bool fin_received = false;  // the peer's FIN arrived and is not yet read
  // In TCP_CLOSE only: an error (a reset, a timeout) waits for the
  // application. Without one the connection ended in order: a socket whose
  // connection went to TIME_WAIT, or acknowledged our last FIN, reads
  // TCP_CLOSE while the application still holds it.
  bool error_pending = false;
  // The connect's SYN got its SYN-ACK: an RTT was measured, or more came in
  // than the one segment (an RST) that refuses a connect. False for a connect
  // refused or unreachable before it was made.
  bool handshake_answered = true;

  // Bytes sent and not yet acknowledged (excludes bytes held back, e.g. by a
  // zero window).
  uint64_t in_flight() const {
    return outq > notsent_bytes ? outq - notsent_bytes : 0;
  }
  // Stream offset of the first byte the application has not read.
  uint64_t delivered() const {
    return bytes_received - inq - (fin_received ? 1 : 0);
  }
  // Stream offset below which the peer kernel has acknowledged every byte,
  // given `written` (bytes the application has written on the socket: the
  // replay ring's head) and whether we shut down our sending side. This is
  // the failover offset F and the healthy-path trim point.
  uint64_t AckedOffset(uint64_t written, bool fin_sent) const {
    uint64_t unacked = outq;
    if (fin_sent && unacked > 0) --unacked;  // Our FIN, not yet acked.
    return unacked < written ? written - unacked : 0;
  }
  // Bytes written on the socket so far, by whichever process: acknowledged
  // plus queued, less the connecting side's SYN and our FIN, which both
  // count (tcp_probe_test.cc). For connections another process may write.
  uint64_t WrittenBytes(bool connecting, bool fin_sent) const {
    const uint64_t extra = (connecting ? 1 : 0) + (fin_sent ? 1 : 0);
    const uint64_t total = bytes_acked + outq;
    return total > extra ? total - extra : 0;
  }
  PathSample path_sample() const {
    PathSample p;
    p.bytes_acked = bytes_acked;
    p.bytes_in_flight = in_flight();
    p.bytes_queued = outq;
    p.last_ack_ms = last_ack_recv_ms;
    p.tcp_state = state;
    p.retransmits = retransmits;
    p.unanswered_probes = probes;
    p.peer_window_shut = window_known && peer_window == 0;
    p.error_pending = error_pending;
    return p;
  }
};

// Stateless; thread-safe as far as `os` is. `os` must outlive the probe.
class TcpProbe {
 public:
  explicit TcpProbe(OsCalls* os) : os_(os) {}

  // TCP_INFO + SIOCOUTQ + FIONREAD (and, in TCP_CLOSE, poll()'s POLLERR,
  // which leaves the error to the application). Errors: the errno of the
  // failing call as a Status naming it (EBADF, ENOTSOCK, EINVAL on a listening
  // socket...); FailedPrecondition when the kernel's tcp_info lacks the byte
  // counters.
  absl::StatusOr<TcpSample> Sample(int fd) const;

  // TcpSample::AckedOffset() from SIOCOUTQ alone (one ioctl): the healthy
  // path's lazy trim point. `written` is the replay ring's head. Errors: the
  // errno of ioctl(SIOCOUTQ) as a Status naming it.
  absl::StatusOr<uint64_t> AckedOffset(int fd, uint64_t written,
                                       bool fin_sent) const;

  // SO_ERROR: the pending socket error (0 when none); reading clears it.
  absl::StatusOr<int> PendingError(int fd) const;

  // Keepalive timing derived from a detection bound.
  struct KeepaliveSettings {
    int idle_s;      // TCP_KEEPIDLE
    int interval_s;  // TCP_KEEPINTVL
    int count;       // TCP_KEEPCNT
  };
  // idle + interval * count ~ detect_ms (whole seconds, at least 1 each).
  // REQUIRES: detect_ms > 0.
  static KeepaliveSettings SettingsFor(int64_t detect_ms);

  // Caps the kernel's send buffer so that the bytes it holds unacknowledged
  // (SIOCOUTQ) stay below half of a replay ring of `ring_capacity` bytes (plus
  // the one write the kernel lets overshoot):
  // SO_SNDBUF = ring_capacity / 4 (the kernel doubles it and counts buffer
  // overhead in it). Then the ring, trimmed to AckedOffset(), always has room
  // when the socket is writable, and a sender never waits for ACKs that no fd
  // event announces. Measured by bench/core_bench: a 4 MiB ring under an
  // autotuned send buffer (tcp_wmem max 4 MiB) waited for ACKs ~3 times per
  // 64 KiB send. The cost: send-buffer autotuning is off for the socket.
  // Errors: the errno of setsockopt as a Status; InvalidArgument when
  // ring_capacity / 4 does not fit an int or is 0.
  absl::Status LimitSendBuffer(int fd, size_t ring_capacity) const;
  // Whether LimitSendBuffer is needed at all: false when the kernel's largest
  // autotuned send buffer (`tcp_wmem_max`, the third field of
  // /proc/sys/net/ipv4/tcp_wmem) cannot hold more than a ring of
  // `ring_capacity` (buffer overhead counts in it, so the data always fits).
  // Then autotuning stays on: bench/shim_bench.sh, iperf3 on loopback,
  // 0.96x with the limit against 1.0x without.
  static bool SendBufferNeedsLimit(uint64_t tcp_wmem_max, size_t ring_capacity);
  // The third field of /proc/sys/net/ipv4/tcp_wmem (this network namespace's),
  // or nullopt when it cannot be read.
  static std::optional<uint64_t> ReadTcpWmemMax();

  // Sets SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT from SettingsFor(detect_ms)
  // (an idle connection's dead path shows as the kernel's abort). Leaves
  // TCP_USER_TIMEOUT as it is: the kernel applies it to a shut window too.
  // InvalidArgument when detect_ms is not positive; otherwise the errno of the
  // first option that fails, naming it.
  absl::Status ConfigureSelectedSocket(int fd, int64_t detect_ms) const;

  // Bounds a connect in progress on `fd` by the detection bound: a SYN that
  // gets no answer (a host gone, a link blackholed) fails with ETIMEDOUT after
  // kConnectTimeoutFactor × detect_ms instead of TCP's two minutes
  // (TCP_USER_TIMEOUT). `app_value` is what EndConnectBound puts back once
  // the connection is up: the kernel applies the option to a shut window
  // too, and would abort a connection whose reader merely pauses.
  static constexpr int64_t kConnectTimeoutFactor = 3;
  absl::Status BoundConnect(int fd, int64_t detect_ms) const;
  absl::Status EndConnectBound(int fd, int app_value) const;

  // The options ConfigureSelectedSocket sets, as the socket had them: read
  // before it, and put back when no diskwire peer holds the connection, so
  // that it lives and dies as plain TCP would (a cut longer than the user
  // timeout diskwire sets must not kill it).
  struct Timeouts {
    int values[5] = {};
  };
  absl::StatusOr<Timeouts> ReadTimeouts(int fd) const;
  absl::Status RestoreTimeouts(int fd, const Timeouts& saved) const;

 private:
  OsCalls* const os_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_TCP_PROBE_H_
