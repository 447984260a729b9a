// SendMessage and ReceiveMessage take the cheaper sendto/recvfrom exactly when
// the kernel would do the same with the msghdr, and give back what
// sendmsg/recvmsg give back (bytes, the peer's name and its length).

#include "core/message_calls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/fake_os_calls.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using Call = FakeOsCalls::Call;

// A message of one buffer with room for a name of `name_len` bytes.
msghdr OneBuffer(iovec* iov, void* name, socklen_t name_len) {
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 1;
  m.msg_name = name;
  m.msg_namelen = name_len;
  return m;
}

// Two UDP sockets on loopback; `a_` connected to `b_`.
class MessageCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = Bound();
    b_ = Bound();
    socklen_t len = sizeof(b_addr_);
    ASSERT_EQ(getsockname(b_, reinterpret_cast<sockaddr*>(&b_addr_), &len), 0);
    len = sizeof(a_addr_);
    ASSERT_EQ(getsockname(a_, reinterpret_cast<sockaddr*>(&a_addr_), &len), 0);
    ASSERT_EQ(
        connect(a_, reinterpret_cast<sockaddr*>(&b_addr_), sizeof(b_addr_)), 0);
  }
  void TearDown() override {
    close(a_);
    close(b_);
  }

  static int Bound() {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }

  FakeOsCalls os_;
  int a_ = -1;
  int b_ = -1;
  sockaddr_in a_addr_{};
  sockaddr_in b_addr_{};
};

TEST_F(MessageCallsTest, OneBufferIsSentWithSendtoAndMoreWithSendmsg) {
  char one[] = "one";
  iovec iov[2] = {{one, 3}, {one, 2}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 1;
  EXPECT_EQ(SendMessage(&os_, a_, m, 0).value, 3);
  EXPECT_EQ(os_.Count(Call::kSendTo), 1);
  m.msg_iovlen = 2;
  EXPECT_EQ(SendMessage(&os_, a_, m, 0).value, 5);
  EXPECT_EQ(os_.Count(Call::kSendTo), 1);
  EXPECT_EQ(os_.Count(Call::kSendMsg), 2);
  char got[8];
  EXPECT_EQ(recv(b_, got, sizeof(got), 0), 3);
  EXPECT_EQ(std::string(got, 3), "one");
  EXPECT_EQ(recv(b_, got, sizeof(got), 0), 5);
  EXPECT_EQ(std::string(got, 5), "oneon");
}

TEST_F(MessageCallsTest, ANameGoesWithSendtoAndAnEmptyOneStaysWithSendmsg) {
  const int c = Bound();
  char byte = 'n';
  iovec iov{&byte, 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_name = &b_addr_;
  m.msg_namelen = sizeof(b_addr_);
  EXPECT_EQ(SendMessage(&os_, c, m, 0).value, 1);
  EXPECT_EQ(os_.Count(Call::kSendTo), 1);
  // sendmsg ignores a name of length 0 (the socket is connected); sendto
  // would refuse it with EINVAL.
  m.msg_namelen = 0;
  SysResult r = SendMessage(&os_, a_, m, 0);
  EXPECT_TRUE(r.ok()) << strerror(r.error);
  EXPECT_EQ(os_.Count(Call::kSendTo), 1);
  char got[4];
  EXPECT_EQ(recv(b_, got, sizeof(got), 0), 1);
  EXPECT_EQ(recv(b_, got, sizeof(got), 0), 1);
  close(c);
}

TEST_F(MessageCallsTest, AncillaryDataIsSentWithSendmsg) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  char byte = 'f';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pair[0], sizeof(int));
  EXPECT_EQ(SendMessage(&os_, pair[0], m, 0).value, 1);
  EXPECT_EQ(os_.Count(Call::kSendTo), 0);
  msghdr in{};
  char got;
  iovec in_iov{&got, 1};
  alignas(cmsghdr) char in_control[CMSG_SPACE(sizeof(int))] = {};
  in.msg_iov = &in_iov;
  in.msg_iovlen = 1;
  in.msg_control = in_control;
  in.msg_controllen = sizeof(in_control);
  EXPECT_EQ(ReceiveMessage(&os_, pair[1], &in, 0).value, 1);
  EXPECT_EQ(os_.Count(Call::kRecvFrom), 0);
  ASSERT_NE(CMSG_FIRSTHDR(&in), nullptr);
  int passed;
  std::memcpy(&passed, CMSG_DATA(CMSG_FIRSTHDR(&in)), sizeof(int));
  close(passed);
  close(pair[0]);
  close(pair[1]);
}

TEST_F(MessageCallsTest, OneBufferIsReceivedWithRecvfromAndTheNameAsRecvmsg) {
  ASSERT_EQ(send(a_, "abc", 3, 0), 3);
  ASSERT_EQ(send(a_, "def", 3, 0), 3);
  // A name buffer too short for the address: both calls fill what fits and
  // say how long the whole name is.
  char got[8];
  iovec iov{got, sizeof(got)};
  char name[4] = {};
  msghdr m = OneBuffer(&iov, name, sizeof(name));
  m.msg_flags = -1;  // recvmsg ignores what it held; so does this
  EXPECT_EQ(ReceiveMessage(&os_, b_, &m, 0).value, 3);
  EXPECT_EQ(os_.Count(Call::kRecvFrom), 1);
  EXPECT_EQ(std::string(got, 3), "abc");
  EXPECT_EQ(m.msg_flags, 0);
  char kernel_name[4] = {};
  msghdr k = OneBuffer(&iov, kernel_name, sizeof(kernel_name));
  EXPECT_EQ(recvmsg(b_, &k, 0), 3);
  EXPECT_EQ(m.msg_namelen, k.msg_namelen);
  EXPECT_EQ(m.msg_namelen, sizeof(sockaddr_in));
  EXPECT_EQ(std::memcmp(name, kernel_name, sizeof(name)), 0);
  EXPECT_EQ(std::memcmp(name, &a_addr_, sizeof(name)), 0);
}

TEST_F(MessageCallsTest, MoreBuffersAreReceivedWithRecvmsg) {
  ASSERT_EQ(send(a_, "abcdef", 6, 0), 6);
  char x[2], y[8];
  iovec iov[2] = {{x, sizeof(x)}, {y, sizeof(y)}};
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  EXPECT_EQ(ReceiveMessage(&os_, b_, &m, 0).value, 6);
  EXPECT_EQ(os_.Count(Call::kRecvFrom), 0);
  EXPECT_EQ(os_.Count(Call::kRecvMsg), 1);
  EXPECT_EQ(std::string(x, 2) + std::string(y, 4), "abcdef");
}

}  // namespace
}  // namespace diskwire
