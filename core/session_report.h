// File: core/session_report.h
// What a process tells the volume about its sessions, inside its heartbeat:
// enough for a peer to find which process holds a session (failover), and for
// `diskwire status` on any host to show each session's state, traffic and
// storage-path lag without any per-connection volume writes.
//
// Encoded as text lines, one session a line, so that a human can read a
// heartbeat file's payload and a newer writer can add fields that an older
// reader skips.

#ifndef DISKWIRE_CORE_SESSION_REPORT_H_
#define DISKWIRE_CORE_SESSION_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/identity.h"

namespace diskwire {

struct SessionReport {
  SessionId id;
  Role role = Role::kClient;
  std::string state;  // "DIRECT", "STORAGE", ...
  std::string local;  // formatted endpoints
  std::string remote;
  uint64_t bytes_out_network =
      0;  // sent over TCP, as acknowledged by the peer kernel
  uint64_t bytes_out_storage = 0;  // sent as DATA records
  uint64_t bytes_in_network = 0;   // received over TCP
  uint64_t bytes_in_storage = 0;  // received from DATA records (new bytes only)
  uint64_t sent_offset = 0;       // bytes the application handed to send()
  uint64_t delivered_offset = 0;  // bytes delivered to the application
  uint64_t peer_ack_offset = 0;   // bytes the peer says it delivered
  int64_t failover_ms =
      -1;  // cut detected → first byte via storage; -1 if none
  int64_t lag_p50_us =
      -1;  // storage-path latency of received records; -1 if none
  int64_t lag_p99_us = -1;
  int64_t lag_max_us = -1;
  // When the process claimed the session (realtime ns): of two processes that
  // list one session (a forking server and its child), the newer claim holds
  // it. 0 from a writer that predates claims.
  int64_t claim_ns = 0;
  // What keeps the session from moving, as one word; "" when nothing does.
  // "volume-full": its records wait for space on the send volume;
  // "volume-stalled": an append has hung longer than the writer's stall
  // bound; "volume-error": appending them fails otherwise (the log says why).
  std::string problem;
  uint64_t resumes = 0;  // times the session went back to the network

  bool operator==(const SessionReport&) const = default;
};

struct ProcessReport {
  std::vector<SessionReport> sessions;
  // Where the process listens for resume connections (0: it does not) and the
  // nonce both ends' resume secret is derived from (core/resume_handshake.h).
  uint16_t resume_port = 0;
  std::string resume_nonce;  // raw bytes; hex in the encoding
  // Which host the process runs on (core/host_identity.h), to catch two
  // hosts that use one node name.
  std::string host;
  std::string addresses;
  std::string version;  // diskwire's (core/version.h); "" from older ones
  uint64_t rejected_records = 0;  // read from the volume and rejected
  // The process's selected listening sockets (core/listeners.h), as
  // FormatListenAddress writes them: a peer that cannot reach one over the
  // network opens its connection over the volume.
  std::vector<std::string> listeners;
  // The UDP relay (core/datagram_relay.h), when the process has one.
  struct Udp {
    std::string tag;           // names its channels ("" when it has none)
    uint16_t probe_port = 0;   // where its liveness probe answers
    uint64_t out_storage = 0;  // datagrams sent over the volume
    uint64_t in_storage = 0;   // and received from it
    uint64_t dropped = 0;      // lost: queue full, or undeliverable
    // The UDP sockets that take selected datagrams, as listeners are written.
    std::vector<std::string> receivers;
    bool operator==(const Udp&) const = default;
  };
  Udp udp;
  bool operator==(const ProcessReport&) const = default;
};

std::string EncodeProcessReport(const ProcessReport& report);

// InvalidArgument naming the line on a malformed payload. Unknown keys are
// skipped.
absl::StatusOr<ProcessReport> DecodeProcessReport(absl::string_view payload);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SESSION_REPORT_H_
