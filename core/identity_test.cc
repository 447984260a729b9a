#include "core/identity.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

sockaddr_storage V4(const char* ip, int port) {
  sockaddr_storage ss = {};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  inet_pton(AF_INET, ip, &in->sin_addr);
  return ss;
}

sockaddr_storage V6(const char* ip, int port) {
  sockaddr_storage ss = {};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &in6->sin6_addr);
  return ss;
}

TEST(Identity, BothEndsDeriveTheSameId) {
  Endpoints client{V4("10.0.0.1", 40000), V4("10.0.0.2", 7000)};
  Endpoints server{V4("10.0.0.2", 7000), V4("10.0.0.1", 40000)};
  ASSERT_OK_AND_ASSIGN(SessionId a, SessionIdFor(client, Role::kClient));
  ASSERT_OK_AND_ASSIGN(SessionId b, SessionIdFor(server, Role::kServer));
  EXPECT_EQ(a, b);
}

TEST(Identity, RoleMattersAndPortsMatter) {
  Endpoints e{V4("10.0.0.1", 40000), V4("10.0.0.2", 7000)};
  ASSERT_OK_AND_ASSIGN(SessionId as_client, SessionIdFor(e, Role::kClient));
  ASSERT_OK_AND_ASSIGN(SessionId as_server, SessionIdFor(e, Role::kServer));
  EXPECT_FALSE(as_client == as_server);
  Endpoints other_port{V4("10.0.0.1", 40001), V4("10.0.0.2", 7000)};
  ASSERT_OK_AND_ASSIGN(SessionId c, SessionIdFor(other_port, Role::kClient));
  EXPECT_FALSE(as_client == c);
}

TEST(Identity, MappedIpv6MatchesIpv4) {
  Endpoints v4_client{V4("10.0.0.1", 40000), V4("10.0.0.2", 7000)};
  Endpoints v6_server{V6("::ffff:10.0.0.2", 7000),
                      V6("::ffff:10.0.0.1", 40000)};
  ASSERT_OK_AND_ASSIGN(SessionId a, SessionIdFor(v4_client, Role::kClient));
  ASSERT_OK_AND_ASSIGN(SessionId b, SessionIdFor(v6_server, Role::kServer));
  EXPECT_EQ(a, b);
}

TEST(Identity, NonIpFamilyIsAnError) {
  Endpoints e;
  e.local.ss_family = AF_UNIX;
  e.remote.ss_family = AF_UNIX;
  EXPECT_THAT(SessionIdFor(e, Role::kClient),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("family")));
}

TEST(Identity, HexRoundTripAndChannelNames) {
  SessionId id{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(SessionIdHex(id), "0123456789abcdeffedcba9876543210");
  ASSERT_OK_AND_ASSIGN(SessionId back, ParseSessionIdHex(SessionIdHex(id)));
  EXPECT_EQ(back, id);
  EXPECT_THAT(ParseSessionIdHex("xyz"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseSessionIdHex("0123456789abcdeffedcba987654321G"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("non-hex")));
  EXPECT_EQ(ChannelName(id, SendDirection(Role::kClient)),
            "s-0123456789abcdeffedcba9876543210-c2s");
  EXPECT_EQ(ChannelName(id, SendDirection(Role::kServer)),
            "s-0123456789abcdeffedcba9876543210-s2c");
  const std::string tag = IncarnationTag("node-a.123.456", 789);
  EXPECT_EQ(tag.size(), 16u);
  EXPECT_EQ(ChannelName(id, SendDirection(Role::kClient), 2, tag),
            "s-0123456789abcdeffedcba9876543210-c2s-e2-i" + tag);
  // Another claim, or another process, is another incarnation.
  EXPECT_NE(IncarnationTag("node-a.123.456", 790), tag);
  EXPECT_NE(IncarnationTag("node-a.123.457", 789), tag);
}

TEST(Identity, FormatsAddresses) {
  EXPECT_EQ(FormatAddress(V4("10.1.2.3", 80)), "10.1.2.3:80");
  EXPECT_EQ(FormatAddress(V6("fd00::1", 443)), "[fd00::1]:443");
}

TEST(Identity, ParsesWhatItFormats) {
  for (const sockaddr_storage& a : {V4("10.1.2.3", 80), V6("fd00::1", 443)}) {
    ASSERT_OK_AND_ASSIGN(sockaddr_storage back, ParseAddress(FormatAddress(a)));
    EXPECT_EQ(FormatAddress(back), FormatAddress(a));
  }
  for (const char* bad : {"", "10.1.2.3", "10.1.2.3:", "10.1.2:80",
                          "fd00::1:80", "[fd00::1:80", "10.1.2.3:65536"}) {
    EXPECT_THAT(ParseAddress(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  MappedAddress v4, v6;
  ASSERT_TRUE(ToMapped(V4("0.0.0.0", 5), &v4));
  EXPECT_TRUE(v4.IsUnspecified() && v4.IsV4());
  EXPECT_EQ(v4.port, 5);
  ASSERT_TRUE(ToMapped(V6("fd00::1", 6), &v6));
  EXPECT_FALSE(v6.IsUnspecified() || v6.IsV4());
}

}  // namespace
}  // namespace diskwire
