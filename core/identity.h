// File: core/identity.h
// How both ends of a connection name it on the volume without touching its byte
// stream: a hash of its endpoints, with the client (the side that called
// connect()) first. docs/IDENTITY.md gives the scheme's limits (NAT, relays,
// port reuse).

#ifndef DISKWIRE_CORE_IDENTITY_H_
#define DISKWIRE_CORE_IDENTITY_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "storage/record.h"

namespace diskwire {

using storage::SessionId;

enum class Role { kClient, kServer };

// The endpoints of a TCP connection as one side sees them.
struct Endpoints {
  sockaddr_storage local = {};
  sockaddr_storage remote = {};
};

// The id both ends derive for one connection: XXH3-128 over a version tag and
// the client's and the server's address and port. IPv4-mapped IPv6 addresses
// hash as their IPv4 form, so a dual stack server and an IPv4 client agree.
// Fails for non-IP families.
absl::StatusOr<SessionId> SessionIdFor(const Endpoints& endpoints, Role role);

// 32 lowercase hex digits, high half first; and back (InvalidArgument on
// anything else).
std::string SessionIdHex(const SessionId& id);
absl::StatusOr<SessionId> ParseSessionIdHex(absl::string_view hex);

// The direction of the bytes a side of the given role sends.
uint8_t SendDirection(Role role);

// Which incarnation of a connection a writer's channel belongs to: 16 hex
// digits from the writing process's id and its claim of the session (the
// time it adopted it, which its heartbeat and announcements publish). Two
// connections with the same four-tuple, one after the other or in two
// tenants, never share a channel.
std::string IncarnationTag(absl::string_view process_id, int64_t claim_ns);

// The channel that carries one direction of a session in its failover
// `episode` (1 for the first): "s-<hex>-c2s" or "s-<hex>-s2c", with "-e<N>"
// appended from the second episode on, so that a reader never meets a record
// of an episode that ended with a resume, then "-i<tag>" (IncarnationTag of
// its writer) when `tag` is given.
std::string ChannelName(const SessionId& id, uint8_t direction,
                        uint32_t episode = 1, absl::string_view tag = "");

// The length of `addr` for its family (sockaddr_in or sockaddr_in6).
socklen_t AddressLength(const sockaddr_storage& addr);

// "10.0.0.1:7000" or "[fd00::1]:7000", for logs and status.
std::string FormatAddress(const sockaddr_storage& addr);
// The inverse of FormatAddress; InvalidArgument naming the text otherwise.
absl::StatusOr<sockaddr_storage> ParseAddress(absl::string_view text);

// An endpoint's address as 16 bytes, IPv4 in its mapped form (::ffff:a.b.c.d),
// and its port: how addresses of either family compare.
struct MappedAddress {
  std::array<uint8_t, 16> bytes = {};
  uint16_t port = 0;
  bool operator==(const MappedAddress&) const = default;
  bool IsUnspecified() const;  // 0.0.0.0 or ::
  bool IsV4() const;           // ::ffff:a.b.c.d
};
// False for a family other than AF_INET and AF_INET6.
bool ToMapped(const sockaddr_storage& addr, MappedAddress* out);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_IDENTITY_H_
