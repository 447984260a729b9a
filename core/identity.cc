#include "core/identity.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <xxhash.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace diskwire {
namespace {

constexpr absl::string_view kTag = "diskwire-session-v1";

// Appends family-independent bytes for an endpoint: 16 address bytes (IPv4 as
// ::ffff:a.b.c.d) and 2 port bytes in network order.
absl::Status AppendEndpoint(const sockaddr_storage& addr, std::string* out) {
  unsigned char bytes[18] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    bytes[10] = bytes[11] = 0xff;
    std::memcpy(bytes + 12, &in->sin_addr, 4);
    std::memcpy(bytes + 16, &in->sin_port, 2);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    std::memcpy(bytes, &in6->sin6_addr, 16);
    std::memcpy(bytes + 16, &in6->sin6_port, 2);
  } else {
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

std::string ChannelName(const SessionId& id, uint8_t direction,
                        uint32_t episode) {
  std::string name =
      absl::StrCat("s-", SessionIdHex(id),
                   direction == storage::kClientToServer ? "-c2s" : "-s2c");
  if (episode > 1) absl::StrAppend(&name, "-e", episode);
  return name;
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

}  // namespace diskwire
