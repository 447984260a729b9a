// The engine's send stories (two engines joined by loopback TCP and a
// directory volume, core/engine_test_fixture.h): a blocking send hands every
// byte to the connection before it returns, as the kernel's does, in every
// state and across a change of state.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Holds SIGPIPE blocked on this thread while it lives: a SIGPIPE that a call
// raised waits, pending, for Raised() to take it.
class SigPipeWatch {
 public:
  SigPipeWatch() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigPipeWatch() {
    Raised();
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  bool Raised() {
    const timespec now{0, 0};
    return sigtimedwait(&pipe_, nullptr, &now) == SIGPIPE;
  }

 private:
  sigset_t pipe_, old_;
};

class SendPathTest : public EngineTest {
 protected:
  // Until the kernel closed `fd`'s connection (TCP_CLOSE).
  static void WaitUntilClosed(int fd) {
    const absl::Time until = absl::Now() + absl::Seconds(5);
    tcp_info info{};
    do {
      socklen_t len = sizeof(info);
      ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
      if (info.tcpi_state == TCP_CLOSE) return;
      absl::SleepFor(absl::Milliseconds(1));  // polling a state
    } while (absl::Now() < until);
    FAIL() << "the connection is still in state " << int{info.tcpi_state};
  }

  // One blocking send of `data` from the client; the server starts reading
  // once `before_reading` has run, so that the send has filled every buffer
  // and waits. Returns what the send returned; `got` is what the server read.
  ssize_t SendWhileTheReaderWaits(const std::string& data,
                                  const std::function<void()>& before_reading,
                                  std::string* got) {
    std::atomic<ssize_t> sent{-2};
    std::thread tx([&] {
      sent = Send(a_.get(), client_, data.data(), data.size());
      a_->Shutdown(client_, SHUT_WR);
    });
    before_reading();
    std::atomic<size_t> progress{0};
    *got = RecvAll(b_.get(), server_, &progress);
    tx.join();
    return sent.load();
  }
};

TEST_F(SendPathTest, ABlockingSendOverStorageIsWhole) {
  Connect(Mode::kStorage);
  const std::string data = RandomBytes(8 << 20, 21);
  std::string got;
  const ssize_t sent = SendWhileTheReaderWaits(
      data, [] { absl::SleepFor(absl::Milliseconds(300)); }, &got);
  // A short count would be lost data to a program that trusts a blocking
  // send, as C programs writing to a TCP socket commonly do.
  EXPECT_EQ(sent, static_cast<ssize_t>(data.size()));
  EXPECT_EQ(got.size(), static_cast<size_t>(sent > 0 ? sent : 0));
  EXPECT_TRUE(got == data.substr(0, got.size()));
}

TEST_F(SendPathTest, ABlockingSendThatAFailoverInterruptsIsWhole) {
  Connect();
  const std::string data = RandomBytes(32 << 20, 22);
  std::string got;
  const ssize_t sent = SendWhileTheReaderWaits(
      data,
      [&] {
        // The send fills the socket and the ring, and waits in SendDirect.
        absl::SleepFor(absl::Milliseconds(300));
        ForceFailover(a_.get(), client_);
      },
      &got);
  EXPECT_EQ(sent, static_cast<ssize_t>(data.size()));
  EXPECT_EQ(got.size(), static_cast<size_t>(sent > 0 ? sent : 0));
  EXPECT_TRUE(got == data.substr(0, got.size()));
  EXPECT_GE(a_->SessionFor(client_)->episode, 1u);
}

// A blocking send that waits for room (the reader reads nothing) ends on a
// signal as the kernel's does: with the bytes it handed over, in either
// state; a program's timeout (alarm, a Python handler) depends on it.
TEST_F(SendPathTest, ASignalEndsASendWaitingForRoomWithWhatItSent) {
  for (Mode mode : {Mode::kFailover, Mode::kStorage}) {
    SCOPED_TRACE(mode == Mode::kStorage ? "storage" : "direct");
    Connect(mode);
    ScopedUsr1Handler handler(/*restart=*/true);
    const std::string data = RandomBytes(64 << 20, 23);
    ssize_t sent = -2;
    const bool returned = ReturnsOnSignal(
        [&] { sent = Send(a_.get(), client_, data.data(), data.size()); },
        absl::Milliseconds(300), absl::Seconds(2),
        [&] {  // let the send finish: read all it sends
          std::string buf(1 << 20, '\0');
          for (size_t got = 0; got < data.size();) {
            const ssize_t n = Recv(b_.get(), server_, buf.data(), buf.size());
            if (n <= 0) break;
            got += n;
          }
        });
    EXPECT_TRUE(returned) << "the signal did not end the send";
    EXPECT_GT(sent, 0);
    EXPECT_LT(sent, static_cast<ssize_t>(data.size()));
    a_.reset();
    b_.reset();
    close(client_);
    close(server_);
  }
}

// The server shut down its side, and the network resets the half-closed
// connection (a firewall's reset, played here by disconnecting the server's
// socket under its engine): the kernel answers the client's next send with
// EPIPE. diskwire carries the stream over the volume, the send goes on there,
// and the application, which would die of the kernel's SIGPIPE, must not get
// one.
TEST_F(SendPathTest, ABrokenPipeThatFailsOverRaisesNoSigPipe) {
  Connect();
  char byte = 'x';
  ASSERT_EQ(Send(a_.get(), client_, &byte, 1), 1);
  ASSERT_EQ(Recv(b_.get(), server_, &byte, 1), 1);
  ASSERT_EQ(b_->Shutdown(server_, SHUT_WR).value, 0);
  ASSERT_EQ(Recv(a_.get(), client_, &byte, 1), 0);
  WaitUntilHeartbeatLists(*b_, a_.get(), client_);
  const sockaddr unspec{AF_UNSPEC, {}};
  ASSERT_EQ(connect(server_, &unspec, sizeof(unspec)), 0) << strerror(errno);
  WaitUntilClosed(client_);
  SigPipeWatch sigpipe;
  EXPECT_EQ(Send(a_.get(), client_, "yz", 2), 2) << strerror(errno);
  EXPECT_FALSE(sigpipe.Raised());
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kStorage);
  // (The server does not read it: the disconnect also zeroed its socket's
  // counters, from which its engine would take what it delivered.)
}

// With nobody to carry the stream, EPIPE reaches the application as the
// kernel gives it: with SIGPIPE, unless the send asked for MSG_NOSIGNAL.
TEST_F(SendPathTest, ABrokenPipeThatReachesTheApplicationRaisesSigPipe) {
  a_ = MakeEngine("a", Mode::kFailover);
  ConnectClient();  // the server runs without diskwire
  ASSERT_EQ(shutdown(client_, SHUT_WR), 0);
  SigPipeWatch sigpipe;
  EXPECT_EQ(Send(a_.get(), client_, "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
  EXPECT_TRUE(sigpipe.Raised());
  iovec iov{const_cast<char*>("x"), 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  EXPECT_EQ(a_->SendMsg(client_, &m, MSG_NOSIGNAL).error, EPIPE);
  EXPECT_FALSE(sigpipe.Raised());
}

}  // namespace
}  // namespace diskwire
