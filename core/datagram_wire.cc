#include "core/datagram_wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace diskwire {
namespace {

constexpr char kVersion = 1;
constexpr char kProbeMagic[4] = {'D', 'W', 'U', 'P'};

void PutEndpoint(const MappedAddress& a, std::string* out) {
  out->append(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size());
  out->push_back(static_cast<char>(a.port >> 8));
  out->push_back(static_cast<char>(a.port & 0xff));
}

MappedAddress GetEndpoint(const char* p) {
  MappedAddress a;
  std::memcpy(a.bytes.data(), p, a.bytes.size());
  a.port = static_cast<uint16_t>((static_cast<uint8_t>(p[16]) << 8) |
                                 static_cast<uint8_t>(p[17]));
  return a;
}

void Store64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}

uint64_t Load64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

std::string EncodeCarriedDatagram(const MappedAddress& from,
                                  const MappedAddress& to,
                                  absl::string_view data) {
  std::string out;
  out.reserve(kCarriedHeaderSize + data.size());
  out.push_back(kVersion);
  PutEndpoint(from, &out);
  PutEndpoint(to, &out);
  out.append(data.data(), data.size());
  return out;
}

absl::StatusOr<CarriedDatagram> DecodeCarriedDatagram(
    absl::string_view payload) {
  if (payload.size() < kCarriedHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "carried datagram of ", payload.size(), " bytes, shorter than its ",
        kCarriedHeaderSize, "-byte header"));
  }
  if (payload[0] != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "carried datagram of version ", static_cast<int>(payload[0]),
        " (this diskwire reads version ", static_cast<int>(kVersion), ")"));
  }
  CarriedDatagram d;
  d.from = GetEndpoint(payload.data() + 1);
  d.to = GetEndpoint(payload.data() + 19);
  d.data = std::string(payload.substr(kCarriedHeaderSize));
  return d;
}

std::string EncodeProbe(const DatagramProbe& probe) {
  std::string out(kProbeSize, '\0');
  std::memcpy(out.data(), kProbeMagic, 4);
  out[4] = static_cast<char>(probe.kind);
  Store64(out.data() + 8, probe.nonce);
  Store64(out.data() + 16, probe.sequence);
  return out;
}

std::optional<DatagramProbe> DecodeProbe(absl::string_view bytes) {
  if (bytes.size() != kProbeSize ||
      std::memcmp(bytes.data(), kProbeMagic, 4) != 0) {
    return std::nullopt;
  }
  const uint8_t kind = static_cast<uint8_t>(bytes[4]);
  if (kind != 1 && kind != 2) return std::nullopt;
  DatagramProbe p;
  p.kind = static_cast<DatagramProbe::Kind>(kind);
  p.nonce = Load64(bytes.data() + 8);
  p.sequence = Load64(bytes.data() + 16);
  return p;
}

}  // namespace diskwire
