// File: core/datagram_relay_internal.h
// Helpers the two halves of the UDP relay share (datagram_relay.cc, the
// application's side; datagram_relay_thread.cc, the relay's thread).

#ifndef DISKWIRE_CORE_DATAGRAM_RELAY_INTERNAL_H_
#define DISKWIRE_CORE_DATAGRAM_RELAY_INTERNAL_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "core/datagram_paths.h"

namespace diskwire::datagram_relay_internal {

// `a` with `port` as a socket address; an IPv4 address in its mapped IPv6
// form when `as_v6` (for a dual-stack socket).
sockaddr_storage ToSockaddr(const DatagramPaths::Address& a, uint16_t port,
                            bool as_v6);
// "10.0.0.2" or "fd00::2", for the log.
std::string FormatIp(const DatagramPaths::Address& a);

}  // namespace diskwire::datagram_relay_internal

#endif  // DISKWIRE_CORE_DATAGRAM_RELAY_INTERNAL_H_
