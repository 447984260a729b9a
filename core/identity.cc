#include "core/identity.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <xxhash.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace diskwire {
namespace {

constexpr absl::string_view kTag = "diskwire-session-v1";

// Family-independent bytes for an endpoint: 16 address bytes (IPv4 as
// ::ffff:a.b.c.d) and 2 port bytes in network order. False for another
// family. No allocation: the UDP relay calls it on every send.
bool EndpointBytes(const sockaddr_storage& addr, unsigned char bytes[18]) {
  std::memset(bytes, 0, 18);
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    bytes[10] = bytes[11] = 0xff;
    std::memcpy(bytes + 12, &in->sin_addr, 4);
    std::memcpy(bytes + 16, &in->sin_port, 2);
    return true;
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    std::memcpy(bytes, &in6->sin6_addr, 16);
    std::memcpy(bytes + 16, &in6->sin6_port, 2);
    return true;
  }
  return false;
}

absl::Status AppendEndpoint(const sockaddr_storage& addr, std::string* out) {
  unsigned char bytes[18];
  if (!EndpointBytes(addr, bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session identity needs an IP endpoint, got family ", addr.ss_family));
  }
  out->append(reinterpret_cast<const char*>(bytes), sizeof(bytes));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SessionId> SessionIdFor(const Endpoints& endpoints, Role role) {
  const sockaddr_storage& client =
      role == Role::kClient ? endpoints.local : endpoints.remote;
  const sockaddr_storage& server =
      role == Role::kClient ? endpoints.remote : endpoints.local;
  std::string key(kTag);
  absl::Status s = AppendEndpoint(client, &key);
  if (s.ok()) s = AppendEndpoint(server, &key);
  if (!s.ok()) return s;
  XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  return SessionId{h.high64, h.low64};
}

std::string SessionIdHex(const SessionId& id) {
  return absl::StrFormat("%016x%016x", id.high, id.low);
}

absl::StatusOr<SessionId> ParseSessionIdHex(absl::string_view hex) {
  if (hex.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("session id must be 32 hex digits, got \"", hex, "\""));
  }
  SessionId id;
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    int v = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                     : -1;
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("session id has a non-hex digit: \"", hex, "\""));
    }
    uint64_t& half = i < 16 ? id.high : id.low;
    half = (half << 4) | static_cast<uint64_t>(v);
  }
  return id;
}

uint8_t SendDirection(Role role) {
  return role == Role::kClient ? storage::kClientToServer
                               : storage::kServerToClient;
}

std::string IncarnationTag(absl::string_view process_id, int64_t claim_ns) {
  const std::string key =
      absl::StrCat("diskwire-incarnation-v1|", process_id, "|", claim_ns);
  return absl::StrFormat("%016x", XXH3_64bits(key.data(), key.size()));
}

std::string ChannelName(const SessionId& id, uint8_t direction,
                        uint32_t episode, absl::string_view tag) {
  std::string name =
      absl::StrCat("s-", SessionIdHex(id),
                   direction == storage::kClientToServer ? "-c2s" : "-s2c");
  if (episode > 1) absl::StrAppend(&name, "-e", episode);
  if (!tag.empty()) absl::StrAppend(&name, "-i", tag);
  return name;
}

socklen_t AddressLength(const sockaddr_storage& addr) {
  return addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

std::string FormatAddress(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    return absl::StrCat(buf, ":", ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", ntohs(in6->sin6_port));
  }
  return absl::StrCat("family-", addr.ss_family);
}

absl::StatusOr<sockaddr_storage> ParseAddress(absl::string_view text) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(
        absl::StrCat("not an address:port: \"", text, "\""));
  };
  sockaddr_storage out = {};
  const size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return bad();
  uint32_t port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535)
    return bad();
  absl::string_view host = text.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) return bad();
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
    const std::string h(host);
    if (inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1) return bad();
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    return out;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&out);
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &in->sin_addr) != 1) return bad();
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<uint16_t>(port));
  return out;
}

bool MappedAddress::IsUnspecified() const {
  static constexpr std::array<uint8_t, 16> kAny = {};
  static constexpr std::array<uint8_t, 16> kAnyV4 = {0, 0, 0, 0, 0,    0,
                                                     0, 0, 0, 0, 0xff, 0xff};
  return bytes == kAny || bytes == kAnyV4;
}

bool MappedAddress::IsV4() const {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes.data(), kPrefix, sizeof(kPrefix)) == 0;
}

bool ToMapped(const sockaddr_storage& addr, MappedAddress* out) {
  unsigned char bytes[18];
  if (!EndpointBytes(addr, bytes)) return false;
  std::memcpy(out->bytes.data(), bytes, 16);
  out->port = static_cast<uint16_t>((bytes[16] << 8) | bytes[17]);
  return true;
}

}  // namespace diskwire
