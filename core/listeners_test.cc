#include "core/listeners.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "base/status_matchers.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

sockaddr_storage Addr(const std::string& text) {
  auto a = ParseAddress(text);
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? *a : sockaddr_storage{};
}

ListenAddress Listener(const std::string& text) {
  auto l = ParseListenAddress(text);
  EXPECT_TRUE(l.ok()) << text;
  return l.ok() ? *l : ListenAddress{};
}

TEST(ListenAddress, FormatsAndParsesBothFamilies) {
  for (const char* text : {"10.0.0.2:5001", "0.0.0.0:80", "[fd00::2]:22",
                           "[::]:5001", "[::]:5001/v6only"}) {
    EXPECT_EQ(FormatListenAddress(Listener(text)), text);
  }
  EXPECT_THAT(ParseListenAddress("10.0.0.2"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("10.0.0.2")));
  EXPECT_FALSE(ParseListenAddress("10.0.0.2:99999").ok());
  EXPECT_FALSE(ParseListenAddress("[fd00::2:22").ok());
  EXPECT_FALSE(ParseListenAddress("10.0.0.2:22/v6only").ok());
}

TEST(ListenerAccepts, ASpecificBindTakesItsAddressOnly) {
  const auto host = ParseHostAddresses("10.0.0.2,10.0.1.2,fd00::2");
  const ListenAddress l = Listener("10.0.0.2:5001");
  EXPECT_TRUE(ListenerAccepts(l, host, Addr("10.0.0.2:5001")));
  EXPECT_TRUE(ListenerAccepts(l, host, Addr("[::ffff:10.0.0.2]:5001")));
  EXPECT_FALSE(ListenerAccepts(l, host, Addr("10.0.1.2:5001")));
  EXPECT_FALSE(ListenerAccepts(l, host, Addr("10.0.0.2:5002")));
}

TEST(ListenerAccepts, AWildcardTakesEveryAddressOfItsHostAndFamily) {
  const auto host = ParseHostAddresses("10.0.0.2,fd00::2,not-an-address");
  ASSERT_EQ(host.size(), 2u);
  EXPECT_TRUE(
      ListenerAccepts(Listener("0.0.0.0:80"), host, Addr("10.0.0.2:80")));
  EXPECT_FALSE(
      ListenerAccepts(Listener("0.0.0.0:80"), host, Addr("10.0.0.3:80")));
  EXPECT_FALSE(
      ListenerAccepts(Listener("0.0.0.0:80"), host, Addr("[fd00::2]:80")));
  // A dual-stack IPv6 wildcard takes IPv4 too; a v6only one does not.
  EXPECT_TRUE(ListenerAccepts(Listener("[::]:80"), host, Addr("10.0.0.2:80")));
  EXPECT_TRUE(ListenerAccepts(Listener("[::]:80"), host, Addr("[fd00::2]:80")));
  EXPECT_FALSE(
      ListenerAccepts(Listener("[::]:80/v6only"), host, Addr("10.0.0.2:80")));
  EXPECT_TRUE(
      ListenerAccepts(Listener("[::]:80/v6only"), host, Addr("[fd00::2]:80")));
}

int ListenOnLoopback() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd, 4), 0);
  return fd;
}

TEST(ListenerTable, KeepsOpenListenersAndDropsClosedOrReusedFds) {
  FakeOsCalls os;
  ListenerTable table(&os);
  const int a = ListenOnLoopback();
  const int b = ListenOnLoopback();
  table.Add(a);
  table.Add(b);
  table.Add(0);  // not a socket: ignored
  ASSERT_EQ(table.Current().size(), 2u);
  sockaddr_storage a_addr = {};
  socklen_t len = sizeof(a_addr);
  getsockname(a, reinterpret_cast<sockaddr*>(&a_addr), &len);
  ASSERT_TRUE(table.Find(a_addr, {}).has_value());
  EXPECT_EQ(FormatAddress(table.Find(a_addr, {})->addr), FormatAddress(a_addr));

  close(b);  // closed behind the table's back
  EXPECT_EQ(table.Current().size(), 1u);
  // a's number now names another socket, which is not listening.
  close(a);
  const int reused = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(reused, a);
  EXPECT_TRUE(table.Current().empty());
  EXPECT_FALSE(table.Find(a_addr, {}).has_value());
  close(reused);
}

}  // namespace
}  // namespace diskwire
