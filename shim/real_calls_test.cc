// File: shim/real_calls_test.cc

#include "shim/real_calls.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

using shim::Real;

// A connected AF_UNIX stream pair made through the OsCalls under test.
class RealOsCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(os_->SocketPair(AF_UNIX, SOCK_STREAM, 0, fds_).ok());
  }
  void TearDown() override {
    for (int fd : fds_) os_->Close(fd);
  }

  // Writes `text` on fds_[0] and returns what one read of fds_[1] gives.
  std::string RoundTrip(const std::string& text) {
    EXPECT_EQ(os_->Write(fds_[0], text.data(), text.size()).value,
              static_cast<ssize_t>(text.size()));
    char buf[256];
    SysResult r = os_->Read(fds_[1], buf, sizeof(buf));
    return r.ok() ? std::string(buf, r.value) : "error";
  }

  OsCalls* os_ = RealOsCalls();
  int fds_[2] = {-1, -1};
};

TEST(RealCallsTable, ResolvesToLibcWhenNothingIsPreloaded) {
  EXPECT_EQ(reinterpret_cast<void*>(Real().read), dlsym(RTLD_DEFAULT, "read"));
  EXPECT_EQ(reinterpret_cast<void*>(Real().connect),
            dlsym(RTLD_DEFAULT, "connect"));
  EXPECT_EQ(reinterpret_cast<void*>(Real().__recv_chk),
            dlsym(RTLD_DEFAULT, "__recv_chk"));
  EXPECT_NE(Real().epoll_pwait2, nullptr);
  EXPECT_NE(Real().close_range, nullptr);
}

TEST(RealCallsTable, IsTheSameTableOnEveryCall) { EXPECT_EQ(&Real(), &Real()); }

TEST(RealCallsTable, SendsAreLibcsWhenNothingIsPreloaded) {
  EXPECT_TRUE(shim::SendsAreLibcs());
}

TEST_F(RealOsCallsTest, FailureReturnsErrnoAndKeepsCallersErrno) {
  errno = 1234;
  SysResult r = os_->Close(-1);
  EXPECT_EQ(r.value, -1);
  EXPECT_EQ(r.error, EBADF);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(errno, 1234);
}

TEST_F(RealOsCallsTest, SuccessReportsNoErrorAndKeepsCallersErrno) {
  errno = EINTR;
  EXPECT_EQ(RoundTrip("hello"), "hello");
  SysResult r = os_->Fcntl(fds_[0], F_GETFL, 0);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(errno, EINTR);
}

TEST_F(RealOsCallsTest, EmptyNonBlockingReadIsEagain) {
  SysResult fl = os_->Fcntl(fds_[1], F_GETFL, 0);
  ASSERT_TRUE(fl.ok());
  ASSERT_TRUE(
      os_->Fcntl(fds_[1], F_SETFL, static_cast<int>(fl.value) | O_NONBLOCK)
          .ok());
  char c;
  SysResult r = os_->Read(fds_[1], &c, 1);
  EXPECT_EQ(r.error, EAGAIN);
}

TEST_F(RealOsCallsTest, SendMsgRecvMsgAndFionread) {
  char out[] = "abcdef";
  iovec iov{out, 6};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  EXPECT_EQ(os_->SendMsg(fds_[0], &msg, 0).value, 6);
  int queued = -1;
  ASSERT_TRUE(os_->Ioctl(fds_[1], FIONREAD, &queued).ok());
  EXPECT_EQ(queued, 6);
  char in[4];
  iovec in_iov{in, sizeof(in)};
  msghdr in_msg{};
  in_msg.msg_iov = &in_iov;
  in_msg.msg_iovlen = 1;
  EXPECT_EQ(os_->RecvMsg(fds_[1], &in_msg, MSG_PEEK).value, 4);
  EXPECT_EQ(std::string(in, 4), "abcd");
}

// Non-blocking sends enter the kernel directly: its answers (bytes, EAGAIN
// once the pair is full, EPIPE, EBADF) come back as libc's would, and the
// caller's errno stays.
TEST_F(RealOsCallsTest, NonBlockingSendsGiveTheKernelsAnswers) {
  errno = 1234;
  char block[4096] = {};
  size_t sent = 0;
  SysResult r;
  while (
      (r = os_->SendTo(fds_[0], block, sizeof(block), MSG_DONTWAIT, nullptr, 0))
          .ok()) {
    ASSERT_GT(r.value, 0);
    sent += static_cast<size_t>(r.value);
    ASSERT_LT(sent, size_t{64} << 20) << "a socket pair that never fills";
  }
  EXPECT_EQ(r.value, -1);
  EXPECT_EQ(r.error, EAGAIN);
  iovec iov{block, sizeof(block)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  EXPECT_EQ(os_->SendMsg(fds_[0], &msg, MSG_DONTWAIT).error, EAGAIN);
  size_t drained = 0;
  while (drained < sent) {
    SysResult got = os_->Read(fds_[1], block, sizeof(block));
    ASSERT_GT(got.value, 0);
    drained += static_cast<size_t>(got.value);
  }
  EXPECT_EQ(os_->SendMsg(fds_[0], &msg, MSG_DONTWAIT).value,
            static_cast<ssize_t>(sizeof(block)));
  EXPECT_EQ(os_->SendTo(-1, block, 1, MSG_DONTWAIT, nullptr, 0).error, EBADF);
  ASSERT_TRUE(os_->Shutdown(fds_[0], SHUT_WR).ok());
  EXPECT_EQ(
      os_->SendTo(fds_[0], block, 1, MSG_DONTWAIT | MSG_NOSIGNAL, nullptr, 0)
          .error,
      EPIPE);
  EXPECT_EQ(errno, 1234);
}

// A non-blocking send is still a cancellation point, as libc's is: a thread
// with a cancellation pending ends there.
TEST_F(RealOsCallsTest, ANonBlockingSendActsOnAPendingCancellation) {
  struct Args {
    OsCalls* os;
    int fd;
    bool returned = false;
  } args{os_, fds_[0]};
  pthread_t thread;
  ASSERT_EQ(pthread_create(
                &thread, nullptr,
                [](void* p) -> void* {
                  auto* a = static_cast<Args*>(p);
                  pthread_cancel(pthread_self());  // deferred: pending
                  a->os->SendTo(a->fd, "x", 1, MSG_DONTWAIT, nullptr, 0);
                  a->returned = true;
                  return nullptr;
                },
                &args),
            0);
  void* result = nullptr;
  ASSERT_EQ(pthread_join(thread, &result), 0);
  EXPECT_EQ(result, PTHREAD_CANCELED);
  EXPECT_FALSE(args.returned);
}

TEST_F(RealOsCallsTest, ShutdownGivesEofToThePeer) {
  ASSERT_TRUE(os_->Shutdown(fds_[0], SHUT_WR).ok());
  char c;
  EXPECT_EQ(os_->Read(fds_[1], &c, 1).value, 0);
  char x = 'x';
  iovec iov{&x, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  EXPECT_EQ(os_->SendMsg(fds_[0], &msg, MSG_NOSIGNAL).error, EPIPE);
}

TEST_F(RealOsCallsTest, Dup3KeepsTheFileAndSetsCloexec) {
  int spare = dup(fds_[0]);
  ASSERT_GE(spare, 0);
  ASSERT_EQ(os_->Dup3(fds_[0], spare, O_CLOEXEC).value, spare);
  EXPECT_EQ(os_->Fcntl(spare, F_GETFD, 0).value, FD_CLOEXEC);
  ASSERT_EQ(os_->Write(spare, "z", 1).value, 1);
  char c = 0;
  EXPECT_EQ(os_->Read(fds_[1], &c, 1).value, 1);
  EXPECT_EQ(c, 'z');
  EXPECT_TRUE(os_->Close(spare).ok());
  EXPECT_EQ(os_->Dup3(fds_[0], fds_[0], 0).error, EINVAL);
}

TEST_F(RealOsCallsTest, SocketOptionsAndNames) {
  int size = 1 << 16;
  ASSERT_TRUE(
      os_->SetSockOpt(fds_[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size))
          .ok());
  int got = 0;
  socklen_t len = sizeof(got);
  ASSERT_TRUE(os_->GetSockOpt(fds_[0], SOL_SOCKET, SO_SNDBUF, &got, &len).ok());
  EXPECT_GE(got, size);
  sockaddr_storage addr{};
  len = sizeof(addr);
  ASSERT_TRUE(
      os_->GetSockName(fds_[0], reinterpret_cast<sockaddr*>(&addr), &len).ok());
  EXPECT_EQ(addr.ss_family, AF_UNIX);
  len = sizeof(addr);
  EXPECT_TRUE(
      os_->GetPeerName(fds_[0], reinterpret_cast<sockaddr*>(&addr), &len).ok());
  EXPECT_EQ(os_->GetSockOpt(-1, SOL_SOCKET, SO_SNDBUF, &got, &len).error,
            EBADF);
}

TEST_F(RealOsCallsTest, PollEpollAndEventFd) {
  pollfd p{fds_[1], POLLIN, 0};
  EXPECT_EQ(os_->Poll(&p, 1, 0).value, 0);
  SysResult ev = os_->EventFd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_TRUE(ev.ok());
  SysResult ep = os_->EpollCreate1(EPOLL_CLOEXEC);
  ASSERT_TRUE(ep.ok());
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = 77;
  ASSERT_TRUE(os_->EpollCtl(ep.value, EPOLL_CTL_ADD, ev.value, &e).ok());
  epoll_event out[2];
  EXPECT_EQ(os_->EpollWait(ep.value, out, 2, 0).value, 0);
  uint64_t one = 1;
  ASSERT_EQ(os_->Write(ev.value, &one, sizeof(one)).value, 8);
  ASSERT_EQ(os_->EpollWait(ep.value, out, 2, 0).value, 1);
  EXPECT_EQ(out[0].data.u64, 77u);
  EXPECT_EQ(os_->EpollCtl(ep.value, EPOLL_CTL_ADD, ev.value, &e).error, EEXIST);
  os_->Close(ep.value);
  os_->Close(ev.value);
}

}  // namespace
}  // namespace diskwire
