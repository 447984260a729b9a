#include "core/selector.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"

namespace diskwire {
namespace {

// The first 12 bytes of an IPv4-mapped IPv6 address.
constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};

absl::Status Bad(absl::string_view what, absl::string_view token,
                 absl::string_view rule, absl::string_view hint = "") {
  return absl::InvalidArgumentError(
      absl::StrCat("bad ", what, " \"", token, "\" in \"", rule, "\"", hint));
}

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Parses a decimal number in [lo, hi]; false on anything else.
bool ParseBounded(absl::string_view s, int lo, int hi, int* out) {
  if (!AllDigits(s) || s.size() > 6) return false;
  int v = 0;
  if (!absl::SimpleAtoi(s, &v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

absl::Status ParsePorts(absl::string_view text, absl::string_view rule,
                        Selector::Rule* out) {
  if (text == "*") return absl::OkStatus();
  absl::string_view lo_text = text, hi_text = text;
  if (size_t dash = text.find('-'); dash != absl::string_view::npos) {
    lo_text = text.substr(0, dash);
    hi_text = text.substr(dash + 1);
  }
  int lo = 0, hi = 0;
  if (!ParseBounded(lo_text, 1, 65535, &lo) ||
      !ParseBounded(hi_text, 1, 65535, &hi)) {
    return Bad("port", text, rule, " (want *, 1..65535 or a range LO-HI)");
  }
  if (lo > hi) return Bad("port range", text, rule, " (low end above high)");
  out->port_lo = static_cast<uint16_t>(lo);
  out->port_hi = static_cast<uint16_t>(hi);
  return absl::OkStatus();
}

// Clears the address bits past the prefix.
void MaskAddress(Selector::Rule* r) {
  for (int i = 0; i < 16; ++i) {
    int keep = r->prefix_bits - 8 * i;
    if (keep >= 8) continue;
    r->address[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
}

// `text` is the host part without brackets; `v6` when it was bracketed.
absl::Status ParseHost(absl::string_view text, bool v6, absl::string_view rule,
                       Selector::Rule* out) {
  if (text == "*") return absl::OkStatus();
  absl::string_view addr_text = text, prefix_text;
  bool has_prefix = false;
  if (size_t slash = text.find('/'); slash != absl::string_view::npos) {
    addr_text = text.substr(0, slash);
    prefix_text = text.substr(slash + 1);
    has_prefix = true;
  }
  std::string addr(addr_text);  // inet_pton wants a terminated string.
  if (v6) {
    if (addr.find('%') != std::string::npos) {
      return Bad("IPv6 address", addr, rule, " (zone ids are not supported)");
    }
    if (inet_pton(AF_INET6, addr.c_str(), out->address.data()) != 1) {
      return Bad("IPv6 address", addr, rule);
    }
  } else {
    std::memcpy(out->address.data(), kMappedPrefix, 12);
    if (inet_pton(AF_INET, addr.c_str(), out->address.data() + 12) != 1) {
      return Bad("host", addr, rule,
                 " (want *, an IPv4 address or CIDR, or an IPv6 one in "
                 "brackets; names are not resolved)");
    }
  }
  int max_bits = v6 ? 128 : 32;
  int bits = max_bits;
  if (has_prefix && !ParseBounded(prefix_text, 0, max_bits, &bits)) {
    return Bad("prefix length", prefix_text, rule,
               absl::StrCat(" (want 0..", max_bits, ")"));
  }
  out->prefix_bits = v6 ? bits : bits + 96;
  MaskAddress(out);
  return absl::OkStatus();
}

absl::StatusOr<Selector::Rule> ParseRule(absl::string_view text) {
  Selector::Rule r;
  absl::string_view rule = text;
  if (absl::ConsumePrefix(&rule, "udp:")) {
    r.protocol = Selector::Protocol::kUdp;
  } else {
    absl::ConsumePrefix(&rule, "tcp:");
  }
  if (rule.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("missing port in \"", text,
                                                   "\" (write ", text,
                                                   "PORT or ", text, "*)"));
  }
  if (rule == "*") return r;
  absl::string_view host, port;
  bool v6 = false;
  if (rule.front() == '[') {
    size_t close = rule.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing ']' in \"", rule, "\""));
    }
    host = rule.substr(1, close - 1);
    absl::string_view rest = rule.substr(close + 1);
    if (rest.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("missing port in \"", rule,
                                                     "\" (write ", rule,
                                                     ":PORT or ", rule, ":*)"));
    }
    if (rest.front() != ':') {
      return Bad("text after ']'", rest, rule);
    }
    port = rest.substr(1);
    v6 = true;
  } else {
    size_t colon = rule.find(':');
    if (colon == absl::string_view::npos) {
      if (rule.find_first_of("./") != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("missing port in \"", rule, "\" (write ", rule,
                         ":PORT or ", rule, ":*)"));
      }
      port = rule;
      host = "*";
    } else if (rule.find(':', colon + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("IPv6 addresses need brackets in \"", rule,
                       "\" (write [ADDRESS]:PORT)"));
    } else {
      host = rule.substr(0, colon);
      port = rule.substr(colon + 1);
    }
  }
  DW_RETURN_IF_ERROR(ParseHost(host, v6, rule, &r));
  DW_RETURN_IF_ERROR(ParsePorts(port, rule, &r));
  return r;
}

// Reads the address (as IPv6, IPv4 mapped) and port of `sa`.
bool Unpack(const sockaddr* sa, uint8_t addr[16], uint16_t* port) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(addr, kMappedPrefix, 12);
    std::memcpy(addr + 12, &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::memcpy(addr, &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

bool HostMatches(const Selector::Rule& r, const uint8_t addr[16]) {
  int whole = r.prefix_bits / 8;
  if (std::memcmp(r.address.data(), addr, whole) != 0) return false;
  int rest = r.prefix_bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[whole] & mask) == r.address[whole];
}

std::string RuleToString(const Selector::Rule& r) {
  std::string host = "*";
  if (r.prefix_bits > 0) {
    char buf[INET6_ADDRSTRLEN];
    bool v4 = r.prefix_bits >= 96 &&
              std::memcmp(r.address.data(), kMappedPrefix, 12) == 0;
    if (v4) {
      inet_ntop(AF_INET, r.address.data() + 12, buf, sizeof(buf));
      host = r.prefix_bits == 128 ? std::string(buf)
                                  : absl::StrCat(buf, "/", r.prefix_bits - 96);
    } else {
      inet_ntop(AF_INET6, r.address.data(), buf, sizeof(buf));
      host = r.prefix_bits == 128
                 ? absl::StrCat("[", buf, "]")
                 : absl::StrCat("[", buf, "/", r.prefix_bits, "]");
    }
  }
  std::string port = "*";
  if (r.port_lo == r.port_hi) {
    port = absl::StrCat(r.port_lo);
  } else if (r.port_lo != 1 || r.port_hi != 65535) {
    port = absl::StrCat(r.port_lo, "-", r.port_hi);
  }
  return absl::StrCat(r.protocol == Selector::Protocol::kUdp ? "udp:" : "",
                      host, ":", port);
}

}  // namespace

absl::StatusOr<Selector> Selector::Parse(absl::string_view text) {
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError("empty rule list");
  }
  Selector s;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    absl::string_view rule = absl::StripAsciiWhitespace(raw);
    if (rule.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("empty rule in \"", text, "\""));
    }
    DW_ASSIGN_OR_RETURN(Rule r, ParseRule(rule));
    s.has_udp_ = s.has_udp_ || r.protocol == Protocol::kUdp;
    s.rules_.push_back(r);
  }
  return s;
}

bool Selector::Matches(const sockaddr* local, const sockaddr* remote,
                       Role role) const {
  uint8_t addr[16];
  uint16_t port = 0;
  if (!Unpack(remote, addr, &port)) return false;
  if (role == Role::kAccept) {
    uint8_t local_addr[16];
    if (!Unpack(local, local_addr, &port)) return false;
  }
  for (const Rule& r : rules_) {
    if (r.protocol == Protocol::kTcp && port >= r.port_lo &&
        port <= r.port_hi && HostMatches(r, addr)) {
      return true;
    }
  }
  return false;
}

bool Selector::MayAcceptOn(uint16_t port) const {
  for (const Rule& r : rules_) {
    if (r.protocol == Protocol::kTcp && port >= r.port_lo && port <= r.port_hi)
      return true;
  }
  return false;
}

bool Selector::MatchesDatagram(const sockaddr* local,
                               const sockaddr* remote) const {
  uint8_t addr[16];
  uint16_t remote_port = 0;
  if (!has_udp_ || !Unpack(remote, addr, &remote_port)) return false;
  uint8_t local_addr[16];
  uint16_t local_port = 0;
  if (!Unpack(local, local_addr, &local_port)) local_port = 0;
  for (const Rule& r : rules_) {
    if (r.protocol != Protocol::kUdp || !HostMatches(r, addr)) continue;
    if ((remote_port >= r.port_lo && remote_port <= r.port_hi) ||
        (local_port != 0 && local_port >= r.port_lo &&
         local_port <= r.port_hi)) {
      return true;
    }
  }
  return false;
}

bool Selector::MayReceiveDatagramsOn(uint16_t port) const {
  for (const Rule& r : rules_) {
    if (r.protocol == Protocol::kUdp && port >= r.port_lo && port <= r.port_hi)
      return true;
  }
  return false;
}

std::string Selector::ToString() const {
  return absl::StrJoin(rules_, ",", [](std::string* out, const Rule& r) {
    out->append(RuleToString(r));
  });
}

}  // namespace diskwire
