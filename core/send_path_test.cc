// The engine's send stories (two engines joined by loopback TCP and a
// directory volume, core/engine_test_fixture.h): a blocking send hands every
// byte to the connection before it returns, as the kernel's does, in every
// state and across a change of state.

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

class SendPathTest : public EngineTest {
 protected:
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

}  // namespace
}  // namespace diskwire
