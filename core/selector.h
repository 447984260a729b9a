// File: core/selector.h
// Which TCP connections and UDP datagrams diskwire carries: the parsed form of
// DISKWIRE_SELECT (grammar in docs/CONFIG.md).
//
//   ASSERT_OK_AND_ASSIGN(Selector s, Selector::Parse("7000,10.0.0.0/8:*"));
//   if (s.Matches(local, remote, Selector::Role::kConnect)) { ... }
//
// A rule is HOST:PORT, where HOST is `*`, an IPv4 address or CIDR, or an IPv6
// address or CIDR in brackets, and PORT is `*`, a port or a range `LO-HI`. A
// bare PORT means `*:PORT`. Host names are not resolved. A rule may start
// with its protocol, `tcp:` or `udp:`; without one it is a TCP rule, so that
// every configuration written before UDP keeps its meaning.
//
// For a connection this process opened (Role::kConnect) a rule matches the
// remote address and the remote port. For a connection it accepted
// (Role::kAccept) the rule's PORT matches the local (listening) port and its
// HOST matches the peer's address. IPv4-mapped IPv6 addresses
// (::ffff:10.0.0.1) match IPv4 rules, and IPv4 addresses match IPv6 rules
// written as ::ffff:0:0/96 prefixes.
//
// Thread safety: a Selector is immutable after Parse(); Matches() may be
// called from any number of threads at once.

#ifndef DISKWIRE_CORE_SELECTOR_H_
#define DISKWIRE_CORE_SELECTOR_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace diskwire {

class Selector {
 public:
  // Which side of the connection this process is.
  enum class Role {
    kConnect,  // The process called connect(): match the remote address.
    kAccept,   // accept() returned it: match the local port and peer address.
  };

  // One parsed rule. Addresses are kept as 16-byte IPv6 addresses, IPv4 ones
  // in their mapped form (::ffff:a.b.c.d, prefix length + 96).
  enum class Protocol : uint8_t { kTcp, kUdp };

  struct Rule {
    Protocol protocol = Protocol::kTcp;
    std::array<uint8_t, 16> address = {};
    int prefix_bits = 0;  // 0: any host.
    uint16_t port_lo = 1;
    uint16_t port_hi = 65535;

    bool operator==(const Rule&) const = default;
  };

  // A selector that matches nothing.
  Selector() = default;

  // Parses a comma-separated rule list. Whitespace around rules is ignored;
  // an empty list or an empty rule is an error. Returns InvalidArgument naming
  // the bad token and its rule, e.g.
  //   bad port "70x0" in "10.0.0.0/8:70x0"
  // Host bits beyond a CIDR prefix are cleared (10.1.2.3/8 is 10.0.0.0/8).
  static absl::StatusOr<Selector> Parse(absl::string_view text);

  // Does the connection between `local` and `remote` match any rule? They
  // must point to a sockaddr_in or sockaddr_in6 (any other family, or null,
  // never matches); `local` is read only for Role::kAccept and may be null
  // for Role::kConnect. Allocation-free and lock-free; cost is linear in the
  // number of rules.
  bool Matches(const sockaddr* local, const sockaddr* remote, Role role) const;

  // Could a connection accepted on a socket listening on `port` match (some
  // rule's PORT takes it, whatever its HOST says of the peer)?
  bool MayAcceptOn(uint16_t port) const;

  // Does a datagram between `local` (may be null: not bound yet) and
  // `remote` match a UDP rule? Same cost as Matches().
  bool MatchesDatagram(const sockaddr* local, const sockaddr* remote) const;
  // Could a UDP socket bound to `port` receive selected datagrams?
  bool MayReceiveDatagramsOn(uint16_t port) const;
  // Is there a UDP rule at all (else UDP sockets are never looked at)?
  bool has_udp() const { return has_udp_; }

  const std::vector<Rule>& rules() const { return rules_; }

  // The canonical text of the rules: "7000, [::ffff:10.0.0.0/104]:*" prints
  // as "*:7000,10.0.0.0/8:*", "tcp:7000,udp:5405" as "*:7000,udp:*:5405".
  // Parse(ToString()) gives an equal Selector.
  std::string ToString() const;

 private:
  std::vector<Rule> rules_;
  bool has_udp_ = false;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SELECTOR_H_
