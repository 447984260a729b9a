// Stories of the healthy path: while the network works a receive is the
// application's own call to the kernel (a swap still takes a receive blocked
// in it onto the volume), and no call takes an engine-wide lock.

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using Call = FakeOsCalls::Call;

// Waits at most `limit` for `done`; false if it never came.
bool WaitFor(const std::atomic<bool>& done, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  while (!done.load()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));  // polling a flag the test sets
  }
  return true;
}

// What a receive on its own thread did within a time limit: a read still
// blocked then is freed by `unblock` and counted as not returned.
struct TimedRecv {
  bool returned = false;
  ssize_t got = 0;
  int error = 0;
};
TimedRecv RecvWithin(EngineImpl* e, int fd, absl::Duration limit,
                     const std::function<void()>& unblock) {
  TimedRecv out;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char buf[16];
    iovec iov{buf, sizeof(buf)};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = e->RecvMsg(fd, &m, 0);
    out.got = r.value;
    out.error = r.ok() ? 0 : r.error;
    done.store(true);
  });
  out.returned = WaitFor(done, limit);
  if (!out.returned) unblock();
  reader.join();
  return out;
}

TEST_F(EngineTest, AReceiveThatWaitsIsOneCallToTheKernel) {
  Connect();
  // The first exchange adopts the session on both sides.
  ASSERT_EQ(Send(a_.get(), client_, "hi", 2), 2);
  char buf[16];
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2);
  const int recvs = os_.Count(Call::kRecvMsg, server_);
  const int polls = os_.Count(Call::kPoll, server_);
  std::atomic<bool> done{false};
  ssize_t got = -1;
  std::thread reader([&] {
    got = Recv(b_.get(), server_, buf, sizeof(buf));
    done.store(true);
  });
  absl::SleepFor(absl::Milliseconds(100));  // the reader is waiting by now
  ASSERT_EQ(Send(a_.get(), client_, "0123456789", 10), 10);
  reader.join();
  EXPECT_EQ(got, 10);
  // Not a non-blocking try, a poll and a second read: a waiting receive costs
  // what it costs without diskwire.
  EXPECT_EQ(os_.Count(Call::kRecvMsg, server_) - recvs, 1);
  EXPECT_EQ(os_.Count(Call::kPoll, server_) - polls, 0);
}

// The kernel's cheaper calls carry the healthy path (core/message_calls.h):
// a send of one buffer is a sendto, a recv of one buffer a recvfrom; a
// recvmsg stays one, for its caller reads the flags the kernel returns.
TEST_F(EngineTest, OneBufferGoesByTheKernelsCheaperCallsAndRecvmsgStaysOne) {
  Connect();
  ASSERT_EQ(Send(a_.get(), client_, "hi", 2), 2);
  char buf[16];
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2);
  const int sendtos = os_.Count(Call::kSendTo, client_);
  const int recvfroms = os_.Count(Call::kRecvFrom, server_);
  const int recvs = os_.Count(Call::kRecvMsg, server_);
  ASSERT_EQ(Send(a_.get(), client_, "0123", 4), 4);
  ASSERT_EQ(Recv(b_.get(), server_, buf, 4), 4);
  EXPECT_EQ(os_.Count(Call::kSendTo, client_) - sendtos, 1);
  EXPECT_EQ(os_.Count(Call::kRecvFrom, server_) - recvfroms, 1);
  ASSERT_EQ(Send(a_.get(), client_, "4567", 4), 4);
  iovec iov{buf, 4};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  ASSERT_EQ(b_->RecvMsg(server_, &m, 0).value, 4);
  EXPECT_EQ(std::string(buf, 4), "4567");
  EXPECT_EQ(os_.Count(Call::kRecvFrom, server_) - recvfroms, 1);
  EXPECT_EQ(os_.Count(Call::kRecvMsg, server_) - recvs, 2);
}

TEST_F(EngineTest, ABlockingReceiveKeepsItsOwnTimeout) {
  Connect();
  const timeval timeout{0, 150'000};
  ASSERT_TRUE(b_->SetSockOpt(server_, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                             sizeof(timeout))
                  .ok());
  const TimedRecv r = RecvWithin(b_.get(), server_, absl::Seconds(5),
                                 [&] { Send(a_.get(), client_, "x", 1); });
  ASSERT_TRUE(r.returned)
      << "SO_RCVTIMEO of 150 ms ignored: still blocked at 5 s";
  EXPECT_EQ(r.got, -1);
  EXPECT_EQ(r.error, EAGAIN) << strerror(r.error);
}

// A reader that stops reading is no network failure: its kernel shuts the
// window and answers the sender's probes, at doubling intervals that soon
// exceed the detection bound (500 ms here).
TEST_F(EngineTest, AReaderThatStopsReadingIsNoFailure) {
  Connect();
  const std::string chunk(256 << 10, 'x');
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      iovec iov{const_cast<char*>(chunk.data()), chunk.size()};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      SysResult r = a_->SendMsg(client_, &m, MSG_DONTWAIT);
      if (!r.ok()) absl::SleepFor(absl::Milliseconds(5));  // full: try later
    }
  });
  absl::SleepFor(absl::Seconds(4));  // past four probe intervals
  stop.store(true);
  writer.join();
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  EXPECT_EQ(a_->SessionFor(client_)->episode, 0u);
}

// A failover while the reader is not reading: every buffer on the way is
// full (the reader's kernel holds more than a replay ring), and the bytes
// still arrive, once, when it reads again.
TEST_F(EngineTest, AFailoverWhileTheReaderPausesLosesNothing) {
  for (const bool cut_on_reader : {false, true}) {
    SCOPED_TRACE(cut_on_reader ? "the reader fails over" : "the writer");
    Connect();
    const std::string data = RandomBytes(24 << 20, 5);
    std::atomic<size_t> sent{0};
    std::thread writer([&] {
      size_t off = 0;
      while (off < data.size()) {
        const ssize_t n = Send(a_.get(), client_, data.data() + off,
                               std::min<size_t>(data.size() - off, 1 << 20));
        if (n <= 0) break;
        off += n;
        sent.store(off);
      }
      a_->Shutdown(client_, SHUT_WR);
    });
    absl::SleepFor(absl::Milliseconds(1500));  // the writer fills everything
    ASSERT_GT(sent.load(), 0u);
    ForceFailover(cut_on_reader ? b_.get() : a_.get(),
                  cut_on_reader ? server_ : client_);
    absl::SleepFor(absl::Milliseconds(500));  // the reader still pauses
    std::atomic<size_t> progress{0};
    const std::string got = RecvAll(b_.get(), server_, &progress);
    writer.join();
    EXPECT_EQ(got.size(), data.size());
    EXPECT_TRUE(got == data)
        << "first difference at " << FirstDifference(got, data);
    a_->Close(client_);
    b_->Close(server_);
    a_.reset();
    b_.reset();
  }
}

TEST_F(EngineTest, ABlockingSendKeepsItsOwnTimeout) {
  Connect();
  const timeval timeout{0, 150'000};
  ASSERT_TRUE(a_->SetSockOpt(client_, SOL_SOCKET, SO_SNDTIMEO, &timeout,
                             sizeof(timeout))
                  .ok());
  // Nobody reads: sends fill the socket and the ring, then one times out,
  // short or with EAGAIN, as the kernel's would.
  const std::string chunk(1 << 20, 'x');
  std::atomic<bool> done{false};
  ssize_t last = 0;
  int error = 0;
  std::thread writer([&] {
    for (int i = 0; i < 64; ++i) {
      last = Send(a_.get(), client_, chunk.data(), chunk.size());
      error = errno;
      if (last != static_cast<ssize_t>(chunk.size())) break;
    }
    done.store(true);
  });
  const bool returned = WaitFor(done, absl::Seconds(10));
  if (!returned) b_->Shutdown(server_, SHUT_RDWR);  // frees the writer
  writer.join();
  ASSERT_TRUE(returned) << "SO_SNDTIMEO of 150 ms ignored: still blocked";
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  EXPECT_TRUE(last >= 0 || error == EAGAIN) << strerror(error);
  EXPECT_LT(last, static_cast<ssize_t>(chunk.size()));
}

TEST_F(EngineTest, ReceiveTimeoutsCarryOverToTheVolume) {
  base_config_.resume = false;  // the loopback works: it would come back
  Connect();
  const timeval timeout{0, 150'000};
  ASSERT_TRUE(b_->SetSockOpt(server_, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                             sizeof(timeout))
                  .ok());
  ASSERT_EQ(Send(a_.get(), client_, "hi", 2), 2);
  char buf[16];
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2);
  ForceFailover(b_.get(), server_);
  ASSERT_EQ(b_->SessionFor(server_)->state.load(), SessionState::kStorage);
  const TimedRecv r = RecvWithin(b_.get(), server_, absl::Seconds(5),
                                 [&] { Send(a_.get(), client_, "x", 1); });
  ASSERT_TRUE(r.returned) << "SO_RCVTIMEO lost on the socket pair";
  EXPECT_EQ(r.got, -1);
  EXPECT_EQ(r.error, EAGAIN) << strerror(r.error);
}

TEST_F(EngineTest, AReceiveBlockedInTheKernelFollowsTheSessionToTheVolume) {
  Connect();
  ASSERT_EQ(Send(a_.get(), client_, "hi", 2), 2);
  char buf[16];
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2);
  std::string got;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char big[4096];
    msghdr m{};
    iovec iov{big, sizeof(big)};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    // MSG_WAITALL: the kernel holds the first part in the buffer when the
    // swap wakes the reader; the rest comes from the volume.
    SysResult r = b_->RecvMsg(server_, &m, MSG_WAITALL);
    if (r.ok()) got.assign(big, r.value);
    done.store(true);
  });
  const std::string data = RandomBytes(4096, 7);
  ASSERT_EQ(Send(a_.get(), client_, data.data(), 1000), 1000);
  absl::SleepFor(absl::Milliseconds(100));  // the reader holds 1000 bytes
  ForceFailover(b_.get(), server_);
  EXPECT_GE(b_->SessionFor(server_)->episode, 1u);
  ASSERT_EQ(Send(a_.get(), client_, data.data() + 1000, 3096), 3096);
  const bool returned = WaitFor(done, absl::Seconds(10));
  if (!returned) b_->Shutdown(server_, SHUT_RDWR);  // frees the reader
  reader.join();
  ASSERT_TRUE(returned) << "the reader never came back";
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "first difference at "
                           << FirstDifference(got, data);
}

// Sends and receives on a DIRECT session go on while another thread holds the
// engine-wide lock: the fd's session is found without it, and nothing on the
// way takes it (two threads on two connections never wait for each other).
TEST_F(EngineTest, TheHealthyPathTakesNoEngineWideLock) {
  Connect();
  ASSERT_EQ(Send(a_.get(), client_, "hi", 2), 2);
  char buf[16];
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2);
  std::atomic<bool> done{false};
  std::string got;
  a_->TableLockForTest()->Lock();
  b_->TableLockForTest()->Lock();
  std::thread app([&] {
    for (int i = 0; i < 100; ++i) {
      if (Send(a_.get(), client_, "ping", 4) != 4) break;
      if (Recv(b_.get(), server_, buf, 4) != 4) break;
      if (Send(b_.get(), server_, "pong", 4) != 4) break;
      if (Recv(a_.get(), client_, buf, 4) != 4) break;
      got.assign(buf, 4);
    }
    done.store(true);
  });
  const bool finished = WaitFor(done, absl::Seconds(5));
  b_->TableLockForTest()->Unlock();
  a_->TableLockForTest()->Unlock();
  app.join();
  EXPECT_TRUE(finished) << "the healthy path waited for the engine-wide lock";
  EXPECT_EQ(got, "pong");
}

// A receive over the volume waits in the engine, not in the kernel. A signal
// must end it as it ends the kernel's blocking receive: with EINTR when the
// handler does not ask for SA_RESTART (Python's handlers do not: without
// the EINTR, Ctrl-C never reached a Python client waiting through an outage).
TEST_F(EngineTest, ASignalEndsAReceiveWaitingOnTheVolume) {
  Connect(Mode::kStorage);
  ScopedUsr1Handler handler(/*restart=*/false);
  ssize_t got = -2;
  int error = 0;
  const bool returned = ReturnsOnSignal(
      [&] {
        char byte;
        got = Recv(a_.get(), client_, &byte, 1);
        error = errno;
      },
      absl::Milliseconds(300), absl::Seconds(2),
      [&] { ASSERT_EQ(Send(b_.get(), server_, "x", 1), 1); });
  EXPECT_TRUE(returned) << "the signal did not end the receive";
  EXPECT_EQ(got, -1);
  EXPECT_EQ(error, EINTR);
}

// With SA_RESTART the kernel restarts the receive: it goes on waiting and
// returns the bytes that come after the signal.
TEST_F(EngineTest, AReceiveOnTheVolumeRestartsAfterAnSaRestartHandler) {
  Connect(Mode::kStorage);
  ScopedUsr1Handler handler(/*restart=*/true);
  ssize_t got = -2;
  char byte = 0;
  const bool returned =
      ReturnsOnSignal([&] { got = Recv(a_.get(), client_, &byte, 1); },
                      absl::Milliseconds(300), absl::Milliseconds(300),
                      [&] { ASSERT_EQ(Send(b_.get(), server_, "x", 1), 1); });
  EXPECT_FALSE(returned) << "returned " << got;
  EXPECT_EQ(got, 1);
  EXPECT_EQ(byte, 'x');
}

}  // namespace
}  // namespace diskwire
