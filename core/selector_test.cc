#include "core/selector.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

// Counts heap allocations so that a test can prove Matches() makes none.
// (GCC 12 sees the replaced new/delete pair inlined as malloc/free and warns
// about a mismatch that is not one.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<long> g_allocations{0};

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace diskwire {
namespace {

using Role = Selector::Role;

// An IPv4 or IPv6 socket address built from text, for Matches().
class Addr {
 public:
  Addr(const std::string& ip, uint16_t port) {
    if (ip.find(':') == std::string::npos) {
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_port = htons(port);
      EXPECT_EQ(inet_pton(AF_INET, ip.c_str(), &in.sin_addr), 1) << ip;
      std::memcpy(&storage_, &in, sizeof(in));
    } else {
      sockaddr_in6 in6{};
      in6.sin6_family = AF_INET6;
      in6.sin6_port = htons(port);
      EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), &in6.sin6_addr), 1) << ip;
      std::memcpy(&storage_, &in6, sizeof(in6));
    }
  }
  const sockaddr* get() const {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }

 private:
  sockaddr_storage storage_{};
};

class SelectorTest : public ::testing::Test {
 protected:
  // Does `rules` select a connect() to ip:port?
  static bool Connect(const std::string& rules, const std::string& ip,
                      uint16_t port) {
    absl::StatusOr<Selector> s = Selector::Parse(rules);
    EXPECT_THAT(s, IsOk());
    return s.ok() && s->Matches(nullptr, Addr(ip, port).get(), Role::kConnect);
  }
  // Does `rules` select a connection accepted on local port `local_port` from
  // peer ip:port?
  static bool Accept(const std::string& rules, uint16_t local_port,
                     const std::string& peer_ip, uint16_t peer_port) {
    absl::StatusOr<Selector> s = Selector::Parse(rules);
    EXPECT_THAT(s, IsOk());
    Addr local(peer_ip.find(':') == std::string::npos ? "127.0.0.1" : "::1",
               local_port);
    return s.ok() && s->Matches(local.get(), Addr(peer_ip, peer_port).get(),
                                Role::kAccept);
  }
};

TEST_F(SelectorTest, BarePortMatchesRemotePortOnConnect) {
  EXPECT_TRUE(Connect("7000", "10.1.2.3", 7000));
  EXPECT_TRUE(Connect("7000", "fd00::5", 7000));
  EXPECT_FALSE(Connect("7000", "10.1.2.3", 7001));
}

TEST_F(SelectorTest, BarePortMatchesLocalPortOnAccept) {
  EXPECT_TRUE(Accept("7000", 7000, "10.1.2.3", 40000));
  EXPECT_FALSE(Accept("7000", 7001, "10.1.2.3", 7000));  // Peer port ignored.
}

TEST_F(SelectorTest, HostMatchesPeerOnAccept) {
  EXPECT_TRUE(Accept("10.0.0.5:7000", 7000, "10.0.0.5", 50000));
  EXPECT_FALSE(Accept("10.0.0.5:7000", 7000, "10.0.0.6", 50000));
  EXPECT_TRUE(Accept("[fd00::/8]:*", 22, "fd12::1", 50000));
}

TEST_F(SelectorTest, CidrBoundaries) {
  EXPECT_TRUE(Connect("10.0.0.0/8:*", "10.255.255.255", 1));
  EXPECT_FALSE(Connect("10.0.0.0/8:*", "11.0.0.0", 1));
  EXPECT_TRUE(Connect("192.168.4.0/22:80", "192.168.7.9", 80));
  EXPECT_FALSE(Connect("192.168.4.0/22:80", "192.168.8.1", 80));
  EXPECT_TRUE(Connect("0.0.0.0/0:80", "1.2.3.4", 80));
  EXPECT_FALSE(Connect("0.0.0.0/0:80", "fd00::1", 80));  // /0 is IPv4 only.
  EXPECT_TRUE(Connect("[fd00::/8]:*", "fdff::1", 9));
  EXPECT_FALSE(Connect("[fd00::/8]:*", "fe00::1", 9));
  EXPECT_TRUE(Connect("[fe80::/10]:*", "febf::1", 9));
  EXPECT_FALSE(Connect("[fe80::/10]:*", "fec0::1", 9));
}

TEST_F(SelectorTest, PortRangesAndWildcards) {
  EXPECT_TRUE(Connect("7000-7010", "1.1.1.1", 7000));
  EXPECT_TRUE(Connect("7000-7010", "1.1.1.1", 7010));
  EXPECT_FALSE(Connect("7000-7010", "1.1.1.1", 7011));
  EXPECT_FALSE(Connect("7000-7010", "1.1.1.1", 6999));
  EXPECT_TRUE(Connect("*:7000", "fd00::1", 7000));
  EXPECT_TRUE(Connect("10.0.0.5:*", "10.0.0.5", 65535));
  EXPECT_FALSE(Connect("10.0.0.5:*", "10.0.0.4", 65535));
  EXPECT_TRUE(Connect("*", "::1", 1));
}

TEST_F(SelectorTest, MappedAddressesMatchIpv4Rules) {
  EXPECT_TRUE(Connect("10.0.0.0/8:7000", "::ffff:10.0.0.1", 7000));
  EXPECT_FALSE(Connect("10.0.0.0/8:7000", "::ffff:11.0.0.1", 7000));
  EXPECT_TRUE(Accept("10.0.0.1:7000", 7000, "::ffff:10.0.0.1", 1234));
  // And an IPv6 rule written as a mapped prefix matches plain IPv4.
  EXPECT_TRUE(Connect("[::ffff:10.0.0.0/104]:*", "10.9.9.9", 5));
}

TEST_F(SelectorTest, AnyRuleOfAListMatches) {
  EXPECT_TRUE(Connect("22, 10.0.0.5:7000 ,[::1]:80", "::1", 80));
  EXPECT_TRUE(Connect("22, 10.0.0.5:7000 ,[::1]:80", "10.0.0.5", 7000));
  EXPECT_FALSE(Connect("22, 10.0.0.5:7000 ,[::1]:80", "10.0.0.5", 80));
}

TEST_F(SelectorTest, OtherFamiliesAndNullNeverMatch) {
  ASSERT_OK_AND_ASSIGN(Selector s, Selector::Parse("*"));
  sockaddr unix_addr{};
  unix_addr.sa_family = AF_UNIX;
  EXPECT_FALSE(s.Matches(nullptr, &unix_addr, Role::kConnect));
  EXPECT_FALSE(s.Matches(nullptr, nullptr, Role::kConnect));
  Addr peer("10.0.0.1", 5);
  EXPECT_FALSE(s.Matches(nullptr, peer.get(), Role::kAccept));
  EXPECT_FALSE(Selector().Matches(nullptr, peer.get(), Role::kConnect));
}

TEST_F(SelectorTest, MatchesDoesNotAllocate) {
  ASSERT_OK_AND_ASSIGN(
      Selector s, Selector::Parse("22,10.0.0.0/8:7000-7010,[fd00::/8]:*,*:80"));
  Addr local("10.0.0.1", 7005), remote("10.9.9.9", 7005), v6("fd00::9", 1);
  long before = g_allocations.load();
  bool a = s.Matches(local.get(), remote.get(), Role::kAccept);
  bool b = s.Matches(nullptr, remote.get(), Role::kConnect);
  bool c = s.Matches(nullptr, v6.get(), Role::kConnect);
  bool d = s.Matches(nullptr, Addr("1.2.3.4", 81).get(), Role::kConnect);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_TRUE(a && b && c);
  EXPECT_FALSE(d);
  // The counter does see allocations.
  auto* probe = new std::string(100, 'x');
  EXPECT_GT(g_allocations.load(), before);
  delete probe;
}

TEST_F(SelectorTest, CanonicalTextRoundTrips) {
  struct Case {
    const char* in;
    const char* canonical;
  };
  const Case cases[] = {
      {"7000", "*:7000"},
      {"*", "*:*"},
      {" 10.1.2.3/8:1-65535 ", "10.0.0.0/8:*"},
      {"10.0.0.5:7000-7010", "10.0.0.5:7000-7010"},
      {"[::1]:80", "[::1]:80"},
      {"[FD00::1/8]:22", "[fd00::/8]:22"},
      {"[::ffff:10.0.0.0/104]:*", "10.0.0.0/8:*"},
      {"[::ffff:1.2.3.4]:9", "1.2.3.4:9"},
      {"0.0.0.0/0:1", "0.0.0.0/0:1"},
      {"1,2", "*:1,*:2"},
      {"tcp:7000,udp:5405", "*:7000,udp:*:5405"},
      {"udp:10.0.0.0/8:5405", "udp:10.0.0.0/8:5405"},
      {"udp:[fd00::/8]:*", "udp:[fd00::/8]:*"},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(Selector s, Selector::Parse(c.in));
    EXPECT_EQ(s.ToString(), c.canonical) << c.in;
    ASSERT_OK_AND_ASSIGN(Selector again, Selector::Parse(s.ToString()));
    EXPECT_EQ(again.rules(), s.rules()) << c.in;
  }
}

TEST_F(SelectorTest, MalformedRulesNameTheBadToken) {
  struct Case {
    const char* in;
    const char* message;
  };
  const Case cases[] = {
      {"", "empty rule list"},
      {"  ", "empty rule list"},
      {"7000,", "empty rule in \"7000,\""},
      {"7000,,22", "empty rule in \"7000,,22\""},
      {"10.0.0.0/8:70x0",
       "bad port \"70x0\" in \"10.0.0.0/8:70x0\" (want *, 1..65535 or a range "
       "LO-HI)"},
      {"0", "bad port \"0\" in \"0\" (want *, 1..65535 or a range LO-HI)"},
      {"65536",
       "bad port \"65536\" in \"65536\" (want *, 1..65535 or a range LO-HI)"},
      {"-5", "bad port \"-5\" in \"-5\" (want *, 1..65535 or a range LO-HI)"},
      {"7000-",
       "bad port \"7000-\" in \"7000-\" (want *, 1..65535 or a range LO-HI)"},
      {"7010-7000",
       "bad port range \"7010-7000\" in \"7010-7000\" (low end "
       "above high)"},
      {"10.0.0.5:",
       "bad port \"\" in \"10.0.0.5:\" (want *, 1..65535 or a range LO-HI)"},
      {"10.0.0.0/8",
       "missing port in \"10.0.0.0/8\" (write 10.0.0.0/8:PORT "
       "or 10.0.0.0/8:*)"},
      {"[::1]", "missing port in \"[::1]\" (write [::1]:PORT or [::1]:*)"},
      {"[::1", "missing ']' in \"[::1\""},
      {"[::1]x80", "bad text after ']' \"x80\" in \"[::1]x80\""},
      {"fd00::1:7000",
       "IPv6 addresses need brackets in \"fd00::1:7000\" (write "
       "[ADDRESS]:PORT)"},
      {"db.example:7000",
       "bad host \"db.example\" in \"db.example:7000\" (want *, an IPv4 "
       "address or CIDR, or an IPv6 one in brackets; names are not "
       "resolved)"},
      {"10.0.0.256:1",
       "bad host \"10.0.0.256\" in \"10.0.0.256:1\" (want *, an IPv4 address "
       "or CIDR, or an IPv6 one in brackets; names are not resolved)"},
      {":7000",
       "bad host \"\" in \":7000\" (want *, an IPv4 address or CIDR, or an "
       "IPv6 one in brackets; names are not resolved)"},
      {"10.0.0.0/33:1",
       "bad prefix length \"33\" in \"10.0.0.0/33:1\" (want 0..32)"},
      {"10.0.0.0/:1", "bad prefix length \"\" in \"10.0.0.0/:1\" (want 0..32)"},
      {"[::/129]:1",
       "bad prefix length \"129\" in \"[::/129]:1\" (want "
       "0..128)"},
      {"[10.0.0.1]:1", "bad IPv6 address \"10.0.0.1\" in \"[10.0.0.1]:1\""},
      {"[fe80::1%eth0]:1",
       "bad IPv6 address \"fe80::1%eth0\" in \"[fe80::1%eth0]:1\" (zone ids "
       "are not supported)"},
      {"udp:", "missing port in \"udp:\" (write udp:PORT or udp:*)"},
      {"sctp:5",
       "bad host \"sctp\" in \"sctp:5\" (want *, an IPv4 address "
       "or CIDR, or an IPv6 one in brackets; names are not "
       "resolved)"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        Selector::Parse(c.in),
        StatusIs(absl::StatusCode::kInvalidArgument, std::string(c.message)))
        << "input: \"" << c.in << "\"";
  }
}

TEST(SelectorPorts, MayAcceptOnLooksAtPortsOnly) {
  auto s = Selector::Parse("10.0.0.0/8:7000,[fd00::/8]:8000-8010");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->MayAcceptOn(7000));
  EXPECT_TRUE(s->MayAcceptOn(8005));
  EXPECT_FALSE(s->MayAcceptOn(7001));
  EXPECT_FALSE(Selector().MayAcceptOn(7000));
}

// A rule without a protocol is TCP: every configuration written before UDP
// keeps its meaning, and UDP rules select no TCP connection.
TEST_F(SelectorTest, ProtocolPrefixesKeepTcpAndUdpApart) {
  EXPECT_TRUE(Connect("tcp:7000", "10.1.2.3", 7000));
  EXPECT_FALSE(Connect("udp:7000", "10.1.2.3", 7000));
  EXPECT_FALSE(Accept("udp:7000", 7000, "10.1.2.3", 40000));
  ASSERT_OK_AND_ASSIGN(Selector tcp_only, Selector::Parse("7000,tcp:22"));
  EXPECT_FALSE(tcp_only.has_udp());
  EXPECT_FALSE(tcp_only.MatchesDatagram(nullptr, Addr("10.1.2.3", 7000).get()));
  EXPECT_FALSE(tcp_only.MayReceiveDatagramsOn(7000));
  ASSERT_OK_AND_ASSIGN(Selector udp, Selector::Parse("udp:5405"));
  EXPECT_TRUE(udp.has_udp());
  EXPECT_FALSE(udp.MayAcceptOn(5405));
}

TEST_F(SelectorTest, DatagramsMatchByRemotePortOrLocalPort) {
  ASSERT_OK_AND_ASSIGN(Selector s, Selector::Parse("udp:10.0.0.0/8:5405"));
  // To the service, from any port (or a socket not bound yet).
  EXPECT_TRUE(s.MatchesDatagram(nullptr, Addr("10.0.0.2", 5405).get()));
  EXPECT_TRUE(s.MatchesDatagram(Addr("10.0.0.1", 40000).get(),
                                Addr("10.0.0.2", 5405).get()));
  // The service's answer to a client's port.
  EXPECT_TRUE(s.MatchesDatagram(Addr("10.0.0.1", 5405).get(),
                                Addr("10.0.0.2", 40000).get()));
  EXPECT_FALSE(s.MatchesDatagram(Addr("10.0.0.1", 40001).get(),
                                 Addr("10.0.0.2", 40000).get()));
  EXPECT_FALSE(s.MatchesDatagram(nullptr, Addr("11.0.0.2", 5405).get()));
  EXPECT_TRUE(s.MatchesDatagram(nullptr, Addr("::ffff:10.0.0.2", 5405).get()));
  EXPECT_TRUE(s.MayReceiveDatagramsOn(5405));
  EXPECT_FALSE(s.MayReceiveDatagramsOn(5406));
}

}  // namespace
}  // namespace diskwire
