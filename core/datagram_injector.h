// File: core/datagram_injector.h
// Hands a datagram that crossed the volume to the application's UDP socket as
// if it had come over the network: an IPv4 or IPv6 packet from the original
// sender's address and port, sent through a raw socket to a local address.
// The kernel then does the rest exactly as for a datagram off the wire: the
// socket's receive buffer limit (a full buffer drops it), poll/epoll
// readiness, MSG_PEEK/MSG_TRUNC, recvmmsg, IP_PKTINFO (whose interface is
// the loopback's).
//
// A raw socket needs CAP_NET_RAW (cluster daemons such as corosync run as
// root); without it Deliver() returns PermissionDenied, once per call.
//
// Thread safety: thread-compatible (the relay's thread owns it).

#ifndef DISKWIRE_CORE_DATAGRAM_INJECTOR_H_
#define DISKWIRE_CORE_DATAGRAM_INJECTOR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/datagram_wire.h"
#include "core/os_calls.h"
#include "storage/file_ops.h"

namespace diskwire {

// The packet that Deliver() sends: an IPv4 header (when both ends are IPv4;
// the kernel fills its checksum and id) or an IPv6 one, then the UDP header
// with its checksum. InvalidArgument when the families differ or the datagram
// is too large for one packet.
absl::StatusOr<std::string> BuildUdpPacket(const MappedAddress& from,
                                           const MappedAddress& to,
                                           absl::string_view data);

class DatagramInjector {
 public:
  // `fds`, when not null, is told of the raw sockets it opens and closes
  // (they are the engine's own: core/private_fd_marks.h).
  explicit DatagramInjector(OsCalls* os, storage::FdObserver* fds = nullptr)
      : os_(os), fds_(fds) {}
  ~DatagramInjector();
  DatagramInjector(const DatagramInjector&) = delete;
  DatagramInjector& operator=(const DatagramInjector&) = delete;

  absl::Status Deliver(const CarriedDatagram& d);

  // In a forked child: lets go of the raw sockets, which the engine's fork
  // handler closed when `fds` was told of them (else they are closed here),
  // and opens new ones at the next Deliver().
  void AfterForkChild();

 private:
  absl::StatusOr<int> RawSocket(int family);

  void CloseRawSockets();

  OsCalls* const os_;
  storage::FdObserver* const fds_;
  int raw4_ = -1;
  int raw6_ = -1;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_DATAGRAM_INJECTOR_H_
