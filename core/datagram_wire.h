// File: core/datagram_wire.h
// The bytes of the UDP relay (docs/ARCHITECTURE.md, "Datagrams"): a datagram
// carried over the volume, one record each, and the liveness probe that two
// engines exchange over the network.
//
// Thread safety: pure functions.

#ifndef DISKWIRE_CORE_DATAGRAM_WIRE_H_
#define DISKWIRE_CORE_DATAGRAM_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/identity.h"

namespace diskwire {

// A datagram as the application sent it: from its socket's address and port
// to the destination's, with its bytes.
struct CarriedDatagram {
  MappedAddress from;
  MappedAddress to;
  std::string data;
};

// One record's payload: a version byte, `from` and `to` (16 address bytes and
// a big-endian port each), then the datagram's bytes.
inline constexpr size_t kCarriedHeaderSize = 1 + 18 + 18;
std::string EncodeCarriedDatagram(const MappedAddress& from,
                                  const MappedAddress& to,
                                  absl::string_view data);
// InvalidArgument on a short payload or an unknown version.
absl::StatusOr<CarriedDatagram> DecodeCarriedDatagram(
    absl::string_view payload);

// The probe: "DWUP", a kind byte, three zero bytes, the sender's nonce and a
// sequence number (both big-endian), 24 bytes. A pong echoes the ping's nonce
// and sequence.
struct DatagramProbe {
  enum class Kind : uint8_t { kPing = 1, kPong = 2 };
  Kind kind = Kind::kPing;
  uint64_t nonce = 0;
  uint64_t sequence = 0;
};
inline constexpr size_t kProbeSize = 24;
std::string EncodeProbe(const DatagramProbe& probe);
// nullopt for anything that is not a probe (a stray datagram on the port).
std::optional<DatagramProbe> DecodeProbe(absl::string_view bytes);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_DATAGRAM_WIRE_H_
