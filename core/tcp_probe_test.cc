// Checks TcpProbe against real loopback TCP connections on this kernel. These
// tests also verify the kernel facts the failover design rests on (see
// tcp_probe.h); a failure here means the design's offsets are wrong.

#include "core/tcp_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <functional>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::absl::StatusCode;

class TcpProbeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Connect()); }
  void TearDown() override {
    for (int fd : {client_, server_}) {
      if (fd >= 0) os_->Close(fd);
    }
  }

  // A loopback connection: client_ connected to server_.
  void Connect() {
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len),
              0);
    client_ = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    server_ = ::accept(listener, nullptr, nullptr);
    ASSERT_GE(server_, 0);
    os_->Close(listener);
  }

  // Writes all of `bytes` on `fd` (blocking).
  void WriteAll(int fd, const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      SysResult r = os_->Write(fd, bytes.data() + done, bytes.size() - done);
      ASSERT_TRUE(r.ok()) << r.error;
      done += r.value;
    }
  }
  // Reads exactly `n` bytes from `fd` (blocking).
  std::string ReadN(int fd, size_t n) {
    std::string out(n, '\0');
    size_t done = 0;
    while (done < n) {
      SysResult r = os_->Read(fd, out.data() + done, n - done);
      if (!r.ok() || r.value == 0) break;
      done += r.value;
    }
    out.resize(done);
    return out;
  }
  // Waits (up to 5 s, polling every ms) until `fd`'s sample satisfies `pred`;
  // returns the last sample. The ACKs of loopback TCP arrive asynchronously.
  TcpSample WaitFor(int fd, const std::function<bool(const TcpSample&)>& pred) {
    TcpSample s;
    for (int i = 0; i < 5000; ++i) {
      absl::StatusOr<TcpSample> r = probe_.Sample(fd);
      EXPECT_THAT(r, IsOk());
      if (!r.ok()) return s;
      s = *r;
      if (pred(s)) return s;
      os_->Poll(nullptr, 0, 1);
    }
    ADD_FAILURE() << "condition not reached within 5 s";
    return s;
  }
  void ResetFrom(int fd) {  // close() with SO_LINGER 0 sends an RST.
    linger l = {1, 0};
    ASSERT_TRUE(os_->SetSockOpt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)).ok());
    os_->Close(fd);
  }

  FakeOsCalls libc_;  // every call to libc
  OsCalls* os_ = &libc_;
  TcpProbe probe_{os_};
  int client_ = -1;
  int server_ = -1;
};

TEST_F(TcpProbeTest, FreshConnectionIsEstablishedAndEmpty) {
  ASSERT_OK_AND_ASSIGN(TcpSample s, probe_.Sample(client_));
  EXPECT_EQ(s.state, kTcpEstablished);
  // Kernel fact: the connecting side's tcpi_bytes_acked counts the SYN.
  EXPECT_EQ(s.bytes_acked, 1u);
  EXPECT_EQ(s.AckedOffset(0, false), 0u);
  EXPECT_EQ(s.bytes_received, 0u);
  EXPECT_EQ(s.outq, 0u);
  EXPECT_EQ(s.inq, 0u);
  EXPECT_EQ(s.delivered(), 0u);
}

// Fact 1: bytes_acked is what the peer kernel holds, bytes_acked + SIOCOUTQ
// is what the application wrote.
TEST_F(TcpProbeTest, AcceptingSideBytesAckedDoesNotCountTheSyn) {
  ASSERT_OK_AND_ASSIGN(TcpSample s, probe_.Sample(server_));
  EXPECT_EQ(s.state, kTcpEstablished);
  EXPECT_EQ(s.bytes_acked, 0u);
}

TEST_F(TcpProbeTest, AckedOffsetIsWhatThePeerKernelAcknowledged) {
  const std::string data(100000, 'a');
  WriteAll(client_, data);  // The server does not read: it sits in its queue.
  WaitFor(client_, [](const TcpSample& s) { return s.outq == 0; });
  // Sampled again: the sample that saw the queue empty read TCP_INFO before
  // SIOCOUTQ, and the last ACK may have come between the two.
  ASSERT_OK_AND_ASSIGN(TcpSample c, probe_.Sample(client_));
  EXPECT_EQ(c.AckedOffset(data.size(), false), data.size());
  EXPECT_EQ(c.bytes_acked, data.size() + 1);  // + the SYN.
  ASSERT_OK_AND_ASSIGN(uint64_t acked,
                       probe_.AckedOffset(client_, data.size(), false));
  EXPECT_EQ(acked, data.size());
  EXPECT_THAT(probe_.AckedOffset(-1, 0, false),
              StatusIs(StatusCode::kFailedPrecondition,
                       testing::HasSubstr("SIOCOUTQ")));
  ASSERT_OK_AND_ASSIGN(TcpSample srv, probe_.Sample(server_));
  EXPECT_EQ(srv.bytes_received, data.size());
  EXPECT_EQ(srv.inq, data.size());
  EXPECT_EQ(srv.delivered(), 0u);
}

TEST_F(TcpProbeTest, AckedPlusOutqIsWrittenAndPeerHoldsAcked) {
  // A small receive buffer keeps some bytes unacknowledged in the sender.
  int small = 4096;
  ASSERT_TRUE(
      os_->SetSockOpt(server_, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small))
          .ok());
  ASSERT_TRUE(os_->Fcntl(client_, F_SETFL, O_NONBLOCK).ok());
  const std::string chunk(65536, 'b');
  uint64_t written = 0;
  for (;;) {
    SysResult r = os_->Write(client_, chunk.data(), chunk.size());
    if (!r.ok()) {
      ASSERT_EQ(r.error, EAGAIN);
      break;
    }
    written += r.value;
  }
  for (int i = 0; i < 20; ++i) {  // Whatever the ACKs' timing:
    ASSERT_OK_AND_ASSIGN(TcpSample c, probe_.Sample(client_));
    ASSERT_OK_AND_ASSIGN(TcpSample srv, probe_.Sample(server_));
    EXPECT_EQ(c.bytes_acked - 1 + c.outq, written);  // - the SYN.
    // The peer holds what AckedOffset() says (it was sampled first).
    EXPECT_LE(c.AckedOffset(written, false), srv.bytes_received);
    EXPECT_EQ(srv.bytes_received - srv.inq, srv.delivered());
    ReadN(server_, 1000);
  }
  ASSERT_OK_AND_ASSIGN(TcpSample srv, probe_.Sample(server_));
  EXPECT_EQ(srv.delivered(), 20u * 1000u);
}

// Fact 2: bytes_received - FIONREAD is what the application read.
TEST_F(TcpProbeTest, DeliveredIsWhatTheApplicationRead) {
  WriteAll(server_, std::string(5000, 'c'));
  TcpSample c = WaitFor(
      client_, [](const TcpSample& s) { return s.bytes_received == 5000; });
  EXPECT_EQ(c.delivered(), 0u);
  ASSERT_EQ(ReadN(client_, 1234).size(), 1234u);
  ASSERT_OK_AND_ASSIGN(c, probe_.Sample(client_));
  EXPECT_EQ(c.bytes_received - c.inq, 1234u);
  EXPECT_EQ(c.delivered(), 1234u);
}

// The real calls, except that the first TCP_INFO is followed by `arrive()`:
// bytes land in the receive queue between TCP_INFO and FIONREAD, as a segment
// can at any moment.
class ArrivingOsCalls final : public OsCalls {
 public:
  ArrivingOsCalls(OsCalls* real, std::function<void()> arrive)
      : real_(real), arrive_(std::move(arrive)) {}
  SysResult GetSockOpt(int fd, int level, int name, void* val,
                       socklen_t* len) override {
    SysResult r = real_->GetSockOpt(fd, level, name, val, len);
    if (level == IPPROTO_TCP && name == TCP_INFO && arrive_) {
      std::exchange(arrive_, nullptr)();
    }
    return r;
  }
  SysResult Ioctl(int fd, unsigned long request, int* arg) override {
    return real_->Ioctl(fd, request, arg);
  }
  // Not used by TcpProbe::Sample.
  SysResult Socket(int, int, int) override { return SysResult::Fail(ENOSYS); }
  SysResult Bind(int, const sockaddr*, socklen_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Listen(int, int) override { return SysResult::Fail(ENOSYS); }
  SysResult Connect(int, const sockaddr*, socklen_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Accept4(int, sockaddr*, socklen_t*, int) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult SocketPair(int, int, int, int[2]) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Close(int) override { return SysResult::Fail(ENOSYS); }
  SysResult Dup3(int, int, int) override { return SysResult::Fail(ENOSYS); }
  SysResult Fcntl(int, int, int) override { return SysResult::Fail(ENOSYS); }
  SysResult SendMsg(int, const msghdr*, int) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult RecvMsg(int, msghdr*, int) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult SendTo(int, const void*, size_t, int, const sockaddr*,
                   socklen_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult RecvFrom(int, void*, size_t, int, sockaddr*, socklen_t*) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Read(int, void*, size_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Write(int, const void*, size_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Shutdown(int, int) override { return SysResult::Fail(ENOSYS); }
  SysResult SetSockOpt(int, int, int, const void*, socklen_t) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult GetSockName(int, sockaddr*, socklen_t*) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult GetPeerName(int, sockaddr*, socklen_t*) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult Poll(pollfd*, nfds_t, int) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult EpollCreate1(int) override { return SysResult::Fail(ENOSYS); }
  SysResult EpollCtl(int, int, int, epoll_event*) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult EpollWait(int, epoll_event*, int, int) override {
    return SysResult::Fail(ENOSYS);
  }
  SysResult EventFd(unsigned int, int) override {
    return SysResult::Fail(ENOSYS);
  }

 private:
  OsCalls* const real_;
  std::function<void()> arrive_;
};

TEST_F(TcpProbeTest, DeliveredStaysRightWhenBytesArriveDuringTheSample) {
  WriteAll(server_, std::string(5000, 'c'));
  WaitFor(client_, [](const TcpSample& s) { return s.bytes_received == 5000; });
  ArrivingOsCalls arriving(os_, [this] {
    WriteAll(server_, std::string(3000, 'd'));
    WaitFor(client_, [](const TcpSample& s) { return s.inq == 8000; });
  });
  TcpProbe probe(&arriving);
  ASSERT_OK_AND_ASSIGN(TcpSample c, probe.Sample(client_));
  EXPECT_EQ(c.bytes_received, 8000u);
  EXPECT_EQ(c.inq, 8000u);
  EXPECT_EQ(c.delivered(), 0u) << "the application has read nothing";
}

TEST_F(TcpProbeTest, DeliveredAfterPeerFin) {
  WriteAll(server_, std::string(5000, 'd'));
  ASSERT_TRUE(os_->Shutdown(server_, SHUT_WR).ok());
  TcpSample c = WaitFor(
      client_, [](const TcpSample& s) { return s.state == kTcpCloseWait; });
  // Kernel fact: the FIN counts as one byte in tcpi_bytes_received but not in
  // FIONREAD; delivered() corrects for it.
  EXPECT_EQ(c.bytes_received, 5001u);
  EXPECT_EQ(c.inq, 5000u);
  EXPECT_TRUE(c.fin_received);
  EXPECT_EQ(c.delivered(), 0u);
  ASSERT_EQ(ReadN(client_, 3000).size(), 3000u);
  ASSERT_OK_AND_ASSIGN(c, probe_.Sample(client_));
  EXPECT_EQ(c.delivered(), 3000u);
  ASSERT_EQ(ReadN(client_, 5000).size(), 2000u);  // Up to and past EOF.
  ASSERT_OK_AND_ASSIGN(c, probe_.Sample(client_));
  EXPECT_EQ(c.inq, 0u);
  EXPECT_EQ(c.delivered(), 5000u);
}

TEST_F(TcpProbeTest, AckedOffsetWithOurFin) {
  WriteAll(server_, std::string(3000, 'f'));  // Accepting side sends.
  ASSERT_TRUE(os_->Shutdown(server_, SHUT_WR).ok());
  TcpSample s =
      WaitFor(server_, [](const TcpSample& t) { return t.outq == 0; });
  EXPECT_EQ(s.state, kTcpFinWait2);
  EXPECT_EQ(s.bytes_acked, 3001u) << "the acknowledged FIN counts";
  EXPECT_EQ(s.AckedOffset(3000, true), 3000u);
  // An unacknowledged FIN is one of SIOCOUTQ's bytes.
  s.outq = 101;
  EXPECT_EQ(s.AckedOffset(3000, true), 2900u);
  EXPECT_EQ(s.AckedOffset(3000, false), 2899u);
}

// Fact 3: after an RST the bytes already queued for reading stay readable.
TEST_F(TcpProbeTest, QueuedBytesStayReadableAfterPeerReset) {
  WriteAll(server_, std::string(7000, 'e'));
  WaitFor(client_, [](const TcpSample& s) { return s.inq == 7000; });
  ResetFrom(server_);
  server_ = -1;
  TcpSample c =
      WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpClose; });
  EXPECT_TRUE(c.error_pending);
  EXPECT_EQ(c.inq, 7000u);
  EXPECT_EQ(c.bytes_received, 7000u);
  EXPECT_FALSE(c.fin_received);
  EXPECT_EQ(c.delivered(), 0u);
  EXPECT_EQ(ReadN(client_, 7000), std::string(7000, 'e'));
  char byte;
  SysResult r = os_->Read(client_, &byte, 1);
  EXPECT_EQ(r.error, ECONNRESET) << "the reset shows after the data";
}

// A reset ends a made connection and a connect alike (both CLOSE with an
// error pending); only the one that was made had its SYN answered.
TEST_F(TcpProbeTest, AResetConnectionHadItsHandshakeAnswered) {
  ResetFrom(server_);
  server_ = -1;
  TcpSample c =
      WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpClose; });
  EXPECT_TRUE(c.error_pending);
  EXPECT_TRUE(c.handshake_answered);
}

TEST_F(TcpProbeTest, ARefusedConnectHadNoAnswer) {
  // A port of this host that nobody listens on: the kernel answers the SYN
  // with a reset.
  const int unused = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(unused, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(getsockname(unused, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  TcpSample c =
      WaitFor(fd, [](const TcpSample& s) { return s.state == kTcpClose; });
  EXPECT_TRUE(c.error_pending);
  EXPECT_FALSE(c.handshake_answered);
  close(fd);
  close(unused);
}

// Kernel fact, and the one case delivered() cannot see: a FIN followed by an
// RST leaves the socket in CLOSE with the FIN still counted in
// bytes_received, so delivered() reads one too high until the socket is
// drained; the drain then ends in EOF (FIN seen), not ECONNRESET.
TEST_F(TcpProbeTest, FinThenResetIsAmbiguousUntilDrained) {
  WriteAll(server_, std::string(6000, 'h'));
  ASSERT_TRUE(os_->Shutdown(server_, SHUT_WR).ok());
  WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpCloseWait; });
  ResetFrom(server_);
  server_ = -1;
  TcpSample c =
      WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpClose; });
  EXPECT_EQ(c.bytes_received, 6001u);
  EXPECT_EQ(c.inq, 6000u);
  EXPECT_FALSE(c.fin_received) << "CLOSE does not say whether a FIN came";
  EXPECT_EQ(c.delivered(), 1u) << "one too high: documented limitation";
  EXPECT_EQ(ReadN(client_, 6000), std::string(6000, 'h'));
  char byte;
  SysResult r = os_->Read(client_, &byte, 1);
  EXPECT_EQ(r.value, 0) << "a FIN was received: the drain ends in EOF";
}

// Kernel fact: a socket whose connection ended in order reads TCP_CLOSE once
// the connection is in TIME_WAIT, while the application still holds it; no
// error waits for it, which tells it from a reset.
TEST_F(TcpProbeTest, AnOrderlyEndReadsCloseWithNoError) {
  ASSERT_TRUE(os_->Shutdown(client_, SHUT_WR).ok());
  WaitFor(server_, [](const TcpSample& s) { return s.state == kTcpCloseWait; });
  ASSERT_TRUE(os_->Shutdown(server_, SHUT_WR).ok());
  TcpSample c =
      WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpClose; });
  EXPECT_FALSE(c.error_pending);
  ASSERT_OK_AND_ASSIGN(int err, probe_.PendingError(client_));
  EXPECT_EQ(err, 0);
}

// The samples taken while waiting (which look for the error with poll())
// leave it to the application.
TEST_F(TcpProbeTest, PendingErrorAfterResetIsConnReset) {
  ResetFrom(server_);
  server_ = -1;
  WaitFor(client_, [](const TcpSample& s) { return s.state == kTcpClose; });
  ASSERT_OK_AND_ASSIGN(int err, probe_.PendingError(client_));
  EXPECT_EQ(err, ECONNRESET);
  ASSERT_OK_AND_ASSIGN(err, probe_.PendingError(client_));
  EXPECT_EQ(err, 0) << "reading SO_ERROR clears it";
}

TEST_F(TcpProbeTest, SampleOfANonSocketNamesTheCall) {
  int fds[2];
  ASSERT_TRUE(os_->SocketPair(AF_UNIX, SOCK_STREAM, 0, fds).ok());
  EXPECT_THAT(probe_.Sample(fds[0]),  // EOPNOTSUPP
              StatusIs(StatusCode::kUnimplemented,
                       testing::HasSubstr("getsockopt(TCP_INFO) on fd")));
  os_->Close(fds[0]);
  os_->Close(fds[1]);
  EXPECT_THAT(probe_.Sample(-1),  // EBADF
              StatusIs(StatusCode::kFailedPrecondition,
                       testing::HasSubstr("Bad file descriptor")));
}

TEST_F(TcpProbeTest, RestoreTimeoutsPutsBackWhatTheSocketHadBeforeTuning) {
  const int user_timeout = 123456, idle = 77;
  ASSERT_EQ(::setsockopt(client_, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                         sizeof(user_timeout)),
            0);
  ASSERT_EQ(
      ::setsockopt(client_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)), 0);
  ASSERT_OK_AND_ASSIGN(TcpProbe::Timeouts own, probe_.ReadTimeouts(client_));
  ASSERT_THAT(probe_.ConfigureSelectedSocket(client_, 1000), IsOk());
  int value = 0;
  socklen_t len = sizeof(value);
  ASSERT_EQ(::getsockopt(client_, IPPROTO_TCP, TCP_KEEPIDLE, &value, &len), 0);
  EXPECT_EQ(value, TcpProbe::SettingsFor(1000).idle_s);
  ASSERT_THAT(probe_.RestoreTimeouts(client_, own), IsOk());
  ASSERT_EQ(::getsockopt(client_, IPPROTO_TCP, TCP_USER_TIMEOUT, &value, &len),
            0);
  EXPECT_EQ(value, user_timeout);
  ASSERT_EQ(::getsockopt(client_, IPPROTO_TCP, TCP_KEEPIDLE, &value, &len), 0);
  EXPECT_EQ(value, idle);
  ASSERT_EQ(::getsockopt(client_, SOL_SOCKET, SO_KEEPALIVE, &value, &len), 0);
  EXPECT_EQ(value, 0) << "keepalive was off before the tuning";
  EXPECT_FALSE(probe_.ReadTimeouts(-1).ok());
}

TEST_F(TcpProbeTest, ConfigureSelectedSocketSetsDerivedOptions) {
  ASSERT_THAT(probe_.ConfigureSelectedSocket(client_, 5000), IsOk());
  auto get = [&](int level, int name) {
    int v = -1;
    socklen_t len = sizeof(v);
    EXPECT_TRUE(os_->GetSockOpt(client_, level, name, &v, &len).ok());
    return v;
  };
  TcpProbe::KeepaliveSettings k = TcpProbe::SettingsFor(5000);
  EXPECT_EQ(get(SOL_SOCKET, SO_KEEPALIVE), 1);
  // Left alone: it would abort a connection whose reader pauses.
  EXPECT_EQ(get(IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPIDLE), k.idle_s);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPINTVL), k.interval_s);
  EXPECT_EQ(get(IPPROTO_TCP, TCP_KEEPCNT), k.count);
}

TEST_F(TcpProbeTest, AConnectIsBoundedUntilItEnds) {
  auto user_timeout = [&] {
    int v = -1;
    socklen_t len = sizeof(v);
    EXPECT_TRUE(
        os_->GetSockOpt(client_, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &len).ok());
    return v;
  };
  ASSERT_THAT(probe_.BoundConnect(client_, 2000), IsOk());
  EXPECT_EQ(user_timeout(), 2000 * TcpProbe::kConnectTimeoutFactor);
  ASSERT_THAT(probe_.EndConnectBound(client_, 0), IsOk());
  EXPECT_EQ(user_timeout(), 0);
  EXPECT_FALSE(probe_.BoundConnect(-1, 2000).ok());
}

TEST_F(TcpProbeTest, ConfigureRejectsBadBoundAndBadFd) {
  EXPECT_THAT(probe_.ConfigureSelectedSocket(client_, 0),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(probe_.ConfigureSelectedSocket(-1, 1000),
              StatusIs(StatusCode::kFailedPrecondition,
                       testing::HasSubstr("setsockopt(SO_KEEPALIVE=1)")));
}

TEST_F(TcpProbeTest, LimitedSendBufferKeepsUnackedBytesUnderHalfTheRing) {
  constexpr size_t kRing = 1 << 20;
  ASSERT_THAT(probe_.LimitSendBuffer(client_, kRing), IsOk());
  ASSERT_TRUE(os_->Fcntl(client_, F_SETFL, O_NONBLOCK).ok());
  const std::string chunk(65536, 'g');
  for (;;) {  // The server never reads: fill every buffer on the way.
    SysResult r = os_->Write(client_, chunk.data(), chunk.size());
    if (!r.ok()) {
      ASSERT_EQ(r.error, EAGAIN);
      break;
    }
  }
  ASSERT_OK_AND_ASSIGN(TcpSample s, probe_.Sample(client_));
  EXPECT_GT(s.outq, 0u);
  // The kernel lets one write overshoot the limit.
  EXPECT_LE(s.outq, kRing / 2 + chunk.size());
  EXPECT_THAT(probe_.LimitSendBuffer(client_, 3),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(probe_.LimitSendBuffer(-1, kRing),
              StatusIs(StatusCode::kFailedPrecondition,
                       testing::HasSubstr("SO_SNDBUF")));
}

// What the detector takes for a reader that stopped reading (not a failure):
// the peer's advertised window reads 0 once every buffer on the way is full.
TEST_F(TcpProbeTest, APeerThatDoesNotReadShowsAShutWindow) {
  ASSERT_OK_AND_ASSIGN(TcpSample first, probe_.Sample(client_));
  if (!first.window_known) {
    GTEST_SKIP() << "this kernel's TCP_INFO has no tcpi_snd_wnd (Linux < 6.2)";
  }
  EXPECT_GT(first.peer_window, 0u);
  ASSERT_TRUE(os_->Fcntl(client_, F_SETFL, O_NONBLOCK).ok());
  const std::string chunk(65536, 'w');
  TcpSample s = first;
  for (int i = 0; i < 400 && s.peer_window > 0; ++i) {
    while (os_->Write(client_, chunk.data(), chunk.size()).ok()) {
    }
    absl::SleepFor(absl::Milliseconds(5));  // the window update comes back
    ASSERT_OK_AND_ASSIGN(s, probe_.Sample(client_));
  }
  EXPECT_EQ(s.peer_window, 0u);
  EXPECT_GT(s.outq, 0u);
  EXPECT_TRUE(s.path_sample().peer_window_shut);
}

TEST(KeepaliveSettingsTest, DetectionWithinTheBound) {
  for (int64_t ms : {1, 500, 1000, 2000, 3000, 5000, 10000, 60000}) {
    TcpProbe::KeepaliveSettings k = TcpProbe::SettingsFor(ms);
    EXPECT_GE(k.idle_s, 1);
    EXPECT_GE(k.interval_s, 1);
    EXPECT_GE(k.count, 1);
    int64_t total_ms = 1000LL * (k.idle_s + k.interval_s * k.count);
    // Whole seconds, at least 2 s: never more than the bound rounded up.
    EXPECT_LE(total_ms, std::max<int64_t>(2000, (ms + 999) / 1000 * 1000))
        << ms;
  }
}

TEST(TcpProbeSendBuffer, LimitedOnlyWhenTheKernelCouldQueueMoreThanTheRing) {
  EXPECT_FALSE(TcpProbe::SendBufferNeedsLimit(4 << 20, 4 << 20));  // Debian's
  EXPECT_TRUE(TcpProbe::SendBufferNeedsLimit(16 << 20, 4 << 20));
  EXPECT_FALSE(TcpProbe::SendBufferNeedsLimit(6 << 20, 64 << 20));
  std::optional<uint64_t> max = TcpProbe::ReadTcpWmemMax();
  ASSERT_TRUE(max.has_value()) << "/proc/sys/net/ipv4/tcp_wmem unreadable";
  EXPECT_GT(*max, 0u);
}

}  // namespace
}  // namespace diskwire
