// connect() called again on a socket the engine selected, as programs do to
// learn how a non-blocking connect ended: the kernel's answers, and the socket
// keeps its one session (tests/integration/connect_down_test.py covers the
// connect that a reset refuses while a peer advertises the listener).

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

class ConnectAgainTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    a_ = MakeEngine("a", Mode::kFailover);
    client_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(client_, 0);
  }

  SysResult ConnectTo(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return a_->Connect(client_, reinterpret_cast<sockaddr*>(&addr),
                       sizeof(addr));
  }

  // A non-blocking connect to the fixture's port, waited out in poll(): the
  // session the engine gave the socket.
  Session* ConnectAndWait() {
    SysResult first = ConnectTo(port_);
    EXPECT_TRUE(!first.ok() && first.error == EINPROGRESS) << first.error;
    Session* s = a_->SessionFor(client_);
    EXPECT_NE(s, nullptr);
    pollfd p{client_, POLLOUT, 0};
    EXPECT_EQ(poll(&p, 1, 5000), 1);
    return s;
  }
};

TEST_F(ConnectAgainTest, AConnectThatCompletedKeepsItsSession) {
  Session* s = ConnectAndWait();
  ASSERT_NE(s, nullptr);
  SysResult again = ConnectTo(port_);
  EXPECT_TRUE(again.ok() || again.error == EISCONN) << again.error;
  EXPECT_EQ(a_->SessionFor(client_), s) << "a second session was made";
  SysResult third = ConnectTo(port_);
  EXPECT_FALSE(third.ok());
  EXPECT_EQ(third.error, EISCONN);
  EXPECT_EQ(a_->SessionFor(client_), s);
}

TEST_F(ConnectAgainTest, AConnectRefusedWithNoListenerAdvertisedIsRefused) {
  // A port of the selection (the fixture's listener's), closed: the kernel
  // answers with a reset, and no peer advertises a listener there.
  close(listener_);
  listener_ = -1;
  Session* s = ConnectAndWait();
  ASSERT_NE(s, nullptr);
  SysResult again = ConnectTo(port_);
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.error, ECONNREFUSED);
  EXPECT_EQ(a_->SessionFor(client_), s);
}

}  // namespace
}  // namespace diskwire
