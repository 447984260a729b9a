#include "core/datagram_injector.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/status_matchers.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

MappedAddress Endpoint(const std::string& text) {
  absl::StatusOr<sockaddr_storage> addr = ParseAddress(text);
  EXPECT_THAT(addr, IsOk());
  MappedAddress m;
  EXPECT_TRUE(addr.ok() && ToMapped(*addr, &m));
  return m;
}

// RFC 768's checksum over the whole packet, pseudo-header included, sums to
// 0xffff when it is right: the kernel would drop the datagram otherwise.
TEST(BuildUdpPacketTest, HeadersAndChecksumAreRight) {
  ASSERT_OK_AND_ASSIGN(std::string v4,
                       BuildUdpPacket(Endpoint("10.0.0.2:5405"),
                                      Endpoint("10.0.0.1:40000"), "hello"));
  ASSERT_EQ(v4.size(), 20u + 8 + 5);
  EXPECT_EQ(v4[0], 0x45);
  EXPECT_EQ(v4[9], IPPROTO_UDP);
  EXPECT_EQ(v4.substr(28), "hello");
  EXPECT_EQ((static_cast<uint8_t>(v4[20]) << 8) | static_cast<uint8_t>(v4[21]),
            5405);
  ASSERT_OK_AND_ASSIGN(std::string v6,
                       BuildUdpPacket(Endpoint("[fd00::2]:5405"),
                                      Endpoint("[fd00::1]:5405"), "odd"));
  ASSERT_EQ(v6.size(), 40u + 8 + 3);
  EXPECT_EQ(v6[0], 0x60);
  EXPECT_EQ(v6[6], IPPROTO_UDP);
  EXPECT_THAT(
      BuildUdpPacket(Endpoint("10.0.0.2:1"), Endpoint("[fd00::1]:1"), "x"),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildUdpPacket(Endpoint("10.0.0.2:1"), Endpoint("10.0.0.1:1"),
                             std::string(65508, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("does not fit")));
}

class DatagramInjectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "a raw socket needs root (CAP_NET_RAW)";
  }
  // A UDP socket bound to `ip` on a free port.
  int Bound(int family, const std::string& ip, MappedAddress* where) {
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    absl::StatusOr<sockaddr_storage> addr =
        ParseAddress(family == AF_INET ? ip + ":0" : "[" + ip + "]:0");
    EXPECT_THAT(addr, IsOk());
    EXPECT_EQ(
        bind(fd, reinterpret_cast<sockaddr*>(&*addr), AddressLength(*addr)), 0);
    sockaddr_storage got = {};
    socklen_t len = sizeof(got);
    getsockname(fd, reinterpret_cast<sockaddr*>(&got), &len);
    EXPECT_TRUE(ToMapped(got, where));
    return fd;
  }
};

// The datagram reaches the socket from the original sender's address and
// port (one no interface here has), with its bytes and boundary.
TEST_F(DatagramInjectorTest, DeliversFromTheOriginalSender) {
  MappedAddress to;
  const int fd = Bound(AF_INET, "127.0.0.1", &to);
  FakeOsCalls os;
  DatagramInjector injector(&os);
  CarriedDatagram d{Endpoint("127.9.8.7:5405"), to, "first"};
  ASSERT_THAT(injector.Deliver(d), IsOk());
  d.data = "second, longer";
  ASSERT_THAT(injector.Deliver(d), IsOk());
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char buf[100];
  sockaddr_in from = {};
  socklen_t len = sizeof(from);
  ssize_t n = recvfrom(fd, buf, sizeof(buf), 0,
                       reinterpret_cast<sockaddr*>(&from), &len);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, 5), "first");
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
  EXPECT_EQ(std::string(text), "127.9.8.7");
  EXPECT_EQ(ntohs(from.sin_port), 5405);
  n = recv(fd, buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n), "second, longer");
  close(fd);
}

TEST_F(DatagramInjectorTest, DeliversOverIpv6) {
  const int probe = socket(AF_INET6, SOCK_DGRAM, 0);
  if (probe < 0) GTEST_SKIP() << "no IPv6 here";
  close(probe);
  MappedAddress to;
  const int fd = Bound(AF_INET6, "::1", &to);
  FakeOsCalls os;
  DatagramInjector injector(&os);
  ASSERT_THAT(injector.Deliver({Endpoint("[::1]:7"), to, "six"}), IsOk());
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  char buf[10];
  sockaddr_in6 from = {};
  socklen_t len = sizeof(from);
  ssize_t n = recvfrom(fd, buf, sizeof(buf), 0,
                       reinterpret_cast<sockaddr*>(&from), &len);
  EXPECT_EQ(std::string(buf, n), "six");
  EXPECT_EQ(ntohs(from.sin6_port), 7);
  close(fd);
}

}  // namespace
}  // namespace diskwire
