// How a session over the volume ends when the peer's process goes: two
// engines joined by loopback TCP and a directory volume
// (core/engine_test_fixture.h), the failover forced.

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST_F(EngineTest, PeerDeathEndsTheSessionWithTimedOut) {
  Connect();
  ForceFailover(a_.get(), client_);
  b_->StopWithoutDrain();  // killed: nothing more is written and its heartbeat
                           // goes stale
  char buf[16];
  absl::Time start = absl::Now();
  ssize_t r = Recv(a_.get(), client_, buf, sizeof(buf));
  EXPECT_EQ(r, -1);
  EXPECT_EQ(errno, ETIMEDOUT);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(EngineTest, PeerExitAfterFailoverIsAnEndOfFile) {
  Connect();
  ForceFailover(a_.get(), client_);
  // Wait until the peer has moved too, then let its process exit: like TCP's
  // kernel, which sends a FIN for the sockets of an exiting process, the exit
  // sends one on the volume.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (b_->SessionFor(server_)->state.load() != SessionState::kStorage) {
    ASSERT_LT(absl::Now(), deadline);
    absl::SleepFor(
        absl::Milliseconds(5));  // polling a state, not synchronising
  }
  ASSERT_EQ(Send(b_.get(), server_, "bye", 3), 3);
  b_.reset();
  char buf[16];
  ASSERT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)), 3);
  EXPECT_EQ(std::string(buf, 3), "bye");
  EXPECT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)), 0);
}

class PeerExitTest : public EngineTest {
 protected:
  static constexpr char kLast[] = "the last words, then the end of file";

  // Over the volume, b_'s application writes its last bytes and shuts down
  // writing; returns once both wait at a_'s application's end, unread.
  void LastWordsThenEndOfFile() {
    Connect();
    ForceFailover(a_.get(), client_);
    const std::string last = kLast;
    ASSERT_EQ(Send(b_.get(), server_, last.data(), last.size()),
              static_cast<ssize_t>(last.size()));
    ASSERT_EQ(b_->Shutdown(server_, SHUT_WR).value, 0);
    // The socket pair that stands for a_'s socket shows the end of file
    // queued behind the bytes.
    pollfd p{client_, POLLRDHUP, 0};
    ASSERT_EQ(poll(&p, 1, 10'000), 1);
  }

  void AwaitEnd(EngineImpl* e, int fd) {
    Session* s = e->SessionFor(fd);
    ASSERT_NE(s, nullptr);
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (s->state.load() != SessionState::kClosed && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(10));  // polling a state
    ASSERT_EQ(s->state.load(), SessionState::kClosed);
  }

  // What a_'s application reads: the last words, then the end of file.
  void ExpectLastWordsThenEndOfFile() {
    char buf[64];
    EXPECT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)),
              static_cast<ssize_t>(sizeof(kLast) - 1))
        << strerror(errno);
    EXPECT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)), 0) << strerror(errno);
    EXPECT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)), 0) << strerror(errno);
  }
};

// A peer that wrote its last bytes and its end of file over the volume and
// then exited, as a forked server's child does: a slow reader gets every
// byte, then the end of file, as from a TCP peer that closed and exited; a
// write gets EPIPE, as the peer kernel's reset gives. Before, the session
// ended once the peer's heartbeat went stale, and the end of file already
// queued for the application read as ETIMEDOUT.
TEST_F(PeerExitTest, APeerThatExitsAfterItsEndOfFileLeavesTheEndOfFile) {
  LastWordsThenEndOfFile();
  b_->BeforeExit();  // the process exits: its heartbeat goes with it
  AwaitEnd(a_.get(), client_);
  ExpectLastWordsThenEndOfFile();
  iovec iov{const_cast<char*>("x"), 1};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  SysResult r = a_->SendMsg(client_, &m, MSG_NOSIGNAL);
  EXPECT_EQ(r.error, EPIPE);
}

// An end of file that reached the application stays one whatever ends the
// session after it, as TCP's once its FIN arrived (a reset then shows on
// writes only): here the peer aborts after its end of file.
TEST_F(PeerExitTest, AResetAfterTheEndOfFileLeavesTheEndOfFile) {
  LastWordsThenEndOfFile();
  const linger abortive{1, 0};
  ASSERT_TRUE(b_->SetSockOpt(server_, SOL_SOCKET, SO_LINGER, &abortive,
                             sizeof(abortive))
                  .ok());
  ASSERT_TRUE(b_->Close(server_).ok());
  AwaitEnd(a_.get(), client_);
  ExpectLastWordsThenEndOfFile();
}

}  // namespace
}  // namespace diskwire
