// The swap's stories (core/swap.cc): what an application sees when a
// failover cannot be carried through.

#include <sys/socket.h>
#include <sys/time.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/time/clock.h"
#include "core/engine_test_fixture.h"

namespace diskwire {
namespace {

class SwapTest : public EngineTest {
 protected:
  bool LogSays(const std::string& text) {
    std::ifstream log(base_config_.log_path);
    const std::string all((std::istreambuf_iterator<char>(log)),
                          std::istreambuf_iterator<char>());
    return all.find(text) != std::string::npos;
  }
};

// The volume fails at the moment of a failover (its channels directory is a
// file): the session must not be left on a socket pair that nothing pumps. It
// stays on TCP, and both ways still carry bytes.
TEST_F(SwapTest, AVolumeThatFailsAtFailoverLeavesTheConnectionOnTcp) {
  base_config_.log_sink = LogSink::kFile;
  base_config_.log_path = dir_ + "-log";
  Connect();
  const std::string channels = dir_ + "/channels";
  std::filesystem::remove_all(channels);
  std::ofstream(channels) << "not a directory\n";
  // FailOver is false while the peer's heartbeat does not list the session
  // yet, then because the volume fails.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!LogSays("cannot move to storage") && absl::Now() < deadline) {
    EXPECT_FALSE(a_->FailOver(client_, "forced by the test"));
    absl::SleepFor(absl::Milliseconds(20));  // the peer's next heartbeat
  }
  ASSERT_TRUE(LogSays("cannot move to storage"));
  EXPECT_EQ(a_->SessionFor(client_)->state.load(), SessionState::kDirect);
  const timeval limit{5, 0};
  for (int fd : {client_, server_}) {
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)),
              0);
  }
  char buf[8];
  ASSERT_EQ(Send(a_.get(), client_, "up", 2), 2);
  ASSERT_EQ(Recv(b_.get(), server_, buf, sizeof(buf)), 2) << strerror(errno);
  EXPECT_EQ(std::string(buf, 2), "up");
  ASSERT_EQ(Send(b_.get(), server_, "down", 4), 4);
  ASSERT_EQ(Recv(a_.get(), client_, buf, sizeof(buf)), 4) << strerror(errno);
  EXPECT_EQ(std::string(buf, 4), "down");
  std::filesystem::remove(base_config_.log_path);
}

}  // namespace
}  // namespace diskwire
