#include "core/datagram_injector.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace diskwire {
namespace {

constexpr size_t kIpv4HeaderSize = 20;
constexpr size_t kIpv6HeaderSize = 40;
constexpr size_t kUdpHeaderSize = 8;
constexpr uint8_t kDefaultTtl = 64;

void Put16(std::string* out, size_t at, uint16_t v) {
  (*out)[at] = static_cast<char>(v >> 8);
  (*out)[at + 1] = static_cast<char>(v & 0xff);
}

// The ones' complement sum of RFC 768 over `bytes`, added to `sum`.
uint32_t SumWords(absl::string_view bytes, uint32_t sum) {
  size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) {
    sum += (static_cast<uint8_t>(bytes[i]) << 8) |
           static_cast<uint8_t>(bytes[i + 1]);
  }
  if (i < bytes.size()) sum += static_cast<uint8_t>(bytes[i]) << 8;
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t folded = static_cast<uint16_t>(~sum & 0xffff);
  return folded == 0 ? 0xffff : folded;  // 0 means "no checksum"
}

absl::string_view AddressBytes(const MappedAddress& a) {
  const char* p = reinterpret_cast<const char*>(a.bytes.data());
  return a.IsV4() ? absl::string_view(p + 12, 4) : absl::string_view(p, 16);
}

}  // namespace

absl::StatusOr<std::string> BuildUdpPacket(const MappedAddress& from,
                                           const MappedAddress& to,
                                           absl::string_view data) {
  if (from.IsV4() != to.IsV4()) {
    return absl::InvalidArgumentError(
        "a datagram between an IPv4 and an IPv6 address");
  }
  const bool v4 = to.IsV4();
  const size_t ip_header = v4 ? kIpv4HeaderSize : kIpv6HeaderSize;
  const size_t udp_length = kUdpHeaderSize + data.size();
  if (udp_length + (v4 ? ip_header : 0) > 0xffff) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a datagram of ", data.size(), " bytes does not fit one packet"));
  }
  std::string packet(ip_header + kUdpHeaderSize, '\0');
  packet.append(data.data(), data.size());
  const absl::string_view src = AddressBytes(from);
  const absl::string_view dst = AddressBytes(to);
  if (v4) {
    packet[0] = 0x45;  // version 4, 5 words
    Put16(&packet, 2, static_cast<uint16_t>(packet.size()));
    packet[8] = static_cast<char>(kDefaultTtl);
    packet[9] = IPPROTO_UDP;
    std::memcpy(&packet[12], src.data(), 4);
    std::memcpy(&packet[16], dst.data(), 4);
  } else {
    packet[0] = 0x60;  // version 6
    Put16(&packet, 4, static_cast<uint16_t>(udp_length));
    packet[6] = IPPROTO_UDP;
    packet[7] = static_cast<char>(kDefaultTtl);
    std::memcpy(&packet[8], src.data(), 16);
    std::memcpy(&packet[24], dst.data(), 16);
  }
  Put16(&packet, ip_header, from.port);
  Put16(&packet, ip_header + 2, to.port);
  Put16(&packet, ip_header + 4, static_cast<uint16_t>(udp_length));
  // The pseudo-header: both addresses, the protocol and the UDP length.
  uint32_t sum = SumWords(src, 0);
  sum = SumWords(dst, sum);
  sum += IPPROTO_UDP + static_cast<uint32_t>(udp_length);
  sum = SumWords(absl::string_view(packet).substr(ip_header), sum);
  Put16(&packet, ip_header + 6, Fold(sum));
  return packet;
}

DatagramInjector::~DatagramInjector() { CloseRawSockets(); }

void DatagramInjector::CloseRawSockets() {
  for (int* fd : {&raw4_, &raw6_}) {
    if (*fd < 0) continue;
    if (fds_ != nullptr) fds_->Closing(*fd);
    os_->Close(*fd);
    *fd = -1;
  }
}

void DatagramInjector::AfterForkChild() {
  if (fds_ == nullptr) {
    CloseRawSockets();
  } else {
    raw4_ = raw6_ = -1;
  }
}

absl::StatusOr<int> DatagramInjector::RawSocket(int family) {
  int& fd = family == AF_INET ? raw4_ : raw6_;
  if (fd >= 0) return fd;
  // IPPROTO_RAW: the packet carries its own header (IP_HDRINCL).
  SysResult r = os_->Socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (!r.ok()) {
    return absl::ErrnoToStatus(r.error, family == AF_INET
                                            ? "opening a raw IPv4 socket"
                                            : "opening a raw IPv6 socket");
  }
  fd = static_cast<int>(r.value);
  if (fds_ != nullptr) fds_->Opened(fd);
  return fd;
}

absl::Status DatagramInjector::Deliver(const CarriedDatagram& d) {
  absl::StatusOr<std::string> packet = BuildUdpPacket(d.from, d.to, d.data);
  if (!packet.ok()) return packet.status();
  sockaddr_storage dest = {};
  socklen_t dest_len;
  if (d.to.IsV4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&dest);
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, d.to.bytes.data() + 12, 4);
    dest_len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&dest);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, d.to.bytes.data(), 16);
    dest_len = sizeof(sockaddr_in6);
  }
  absl::StatusOr<int> fd = RawSocket(dest.ss_family);
  if (!fd.ok()) return fd.status();
  iovec iov{packet->data(), packet->size()};
  msghdr msg{};
  msg.msg_name = &dest;
  msg.msg_namelen = dest_len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  SysResult sent = os_->SendMsg(*fd, &msg, MSG_DONTWAIT);
  if (!sent.ok()) {
    return absl::ErrnoToStatus(sent.error,
                               "handing a carried datagram to the socket");
  }
  return absl::OkStatus();
}

}  // namespace diskwire
