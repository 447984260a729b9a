// File: shim/real_engine_test.cc
// libdiskwire.so with core's engine, configured: the probe's transcript must
// be what it is without diskwire, and a process whose sockets are not selected
// must leave the volume untouched (DESIGN.md invariant 6).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/testing/preload_fixture.h"
#include "storage/dir_volume.h"

namespace diskwire::testing_shim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A loopback port nobody listens on now.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

TEST_F(PreloadTest, UnselectedSocketsCreateNothingOnTheVolume) {
  Result base = Probe("transcript", {});
  Result real = Probe("transcript", {Real(), Volume(), "DISKWIRE_SELECT=1"});
  ASSERT_TRUE(Exited(real, 0)) << real.err;
  EXPECT_EQ(real.out, base.out);
  std::string created;
  for (const auto& e : std::filesystem::recursive_directory_iterator(volume_)) {
    created += " " + e.path().lexically_relative(volume_).string();
  }
  EXPECT_EQ(created, "") << "created on the volume by an unselected process";
}

TEST_F(PreloadTest, AVolumeThatCannotServeStopsTheProgramUnlessPassthrough) {
  std::ofstream(volume_ + "/somebody-elses-data") << "x";
  Result failed = Probe("transcript", {Real(), Volume(), "DISKWIRE_SELECT=1"});
  EXPECT_TRUE(Exited(failed, 78)) << failed.err;
  EXPECT_THAT(failed.err, HasSubstr("cannot use the volume: "));
  EXPECT_THAT(failed.err, HasSubstr("is not a diskwire volume"));
  EXPECT_THAT(failed.err, HasSubstr("stopping"));
  Result base = Probe("transcript", {});
  Result passed = Probe("transcript", {Real(), Volume(), "DISKWIRE_SELECT=1",
                                       "DISKWIRE_ON_ERROR=passthrough"});
  EXPECT_TRUE(Exited(passed, 0)) << passed.err;
  EXPECT_EQ(passed.out, base.out);
}

TEST_F(PreloadTest, SelectedLoopbackSocketsKeepTheirTranscript) {
  Result base = Probe("transcript", {});
  Result real = Probe("transcript", {Real(), Volume(), "DISKWIRE_SELECT=*"});
  EXPECT_TRUE(Exited(real, 0)) << real.err;
  EXPECT_EQ(real.out, base.out);
  EXPECT_THAT(real.err, Not(HasSubstr("diskwire: fatal")));
  // Events stay out of the application's stderr unless asked for.
  EXPECT_THAT(real.err, Not(HasSubstr(" INFO: ")));
  Result loud = Probe("transcript", {Real(), Volume(), "DISKWIRE_SELECT=*",
                                     "DISKWIRE_LOG=stderr"});
  EXPECT_THAT(loud.err, HasSubstr(" INFO: selected "));
}

// A library preloaded after diskwire that defines the send functions still
// sees the engine's sends: the healthy path enters the kernel directly only
// when the next sendto and sendmsg are libc's.
TEST_F(PreloadTest, ALibraryPreloadedAfterTheShimSeesTheEnginesSends) {
  Result base = Probe("transcript", {});
  const std::string both = Real() + " " + Runfile("libsend_counter.so");
  Result r = Probe("transcript", {both, Volume(), "DISKWIRE_SELECT=*"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_EQ(r.out, base.out);
  int sends = -1;
  const size_t at = r.err.find("send_counter: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  ASSERT_EQ(sscanf(r.err.c_str() + at, "send_counter: %d", &sends), 1);
  EXPECT_GT(sends, 0) << "the engine's sends stepped over the library";
}

TEST_F(PreloadTest, AProgramsOwnXxhashSymbolsDoNotChangeTheChecksums) {
  // The program exports XXH3_64bits returning 42: were the engine's records
  // checksummed with it, every reader would reject them as corrupt.
  const std::string probe = Runfile("clash_probe");
  const std::vector<std::string> env = {Real(), Volume(), "DISKWIRE_SELECT=*",
                                        "DISKWIRE_NODE=clash",
                                        "PATH=/usr/bin:/bin"};
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    char* const argv[] = {const_cast<char*>(probe.c_str()), nullptr};
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  storage::HeartbeatListing seen;
  for (int i = 0; i < 100 && seen.heartbeats.empty() && seen.problems.empty();
       ++i) {
    usleep(50'000);
    auto v = storage::OpenDirVolume(volume_, {});
    if (!v.ok()) continue;
    auto l = (*v)->ListHeartbeats();
    if (l.ok()) seen = *l;
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_THAT(seen.problems, ::testing::IsEmpty());
  ASSERT_EQ(seen.heartbeats.size(), 1u) << "no heartbeat within 5 s";
  EXPECT_EQ(seen.heartbeats[0].node, "clash");
}

// The probe exports libsodium's functions (wrong ones) and a statically
// linked abseil of its own; it sends over the volume, records authenticated
// with a key, to a plain program. Were the engine to call the probe's
// crypto_generichash, its MACs would be 0xAA bytes and the receiver's engine
// would refuse every record.
TEST_F(PreloadTest, AProgramWithItsOwnLibrariesSendsAuthenticatedRecords) {
  char key_path[] = "/tmp/dw_key_XXXXXX";
  const int key_fd = mkstemp(key_path);
  ASSERT_GE(key_fd, 0);
  const std::string key(32, '\x5c');
  ASSERT_EQ(write(key_fd, key.data(), key.size()), 32);
  close(key_fd);
  const int port = FreePort();
  ASSERT_GT(port, 0);
  constexpr size_t kBytes = 4 << 20;
  auto env = [&](const char* node) {
    return std::vector<std::string>{
        Real(),
        Volume(),
        "DISKWIRE_SELECT=" + std::to_string(port),
        "DISKWIRE_MODE=storage",
        std::string("DISKWIRE_KEY_FILE=") + key_path,
        std::string("DISKWIRE_NODE=") + node,
        "PATH=/usr/bin:/bin"};
  };
  const std::string receiver = absl::StrCat(R"(
import socket
pattern = bytes(range(251)) * ()",
                                            kBytes / 251 + 300, R"()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", )",
                                            port, R"())
l.listen(1)
c, _ = l.accept()
n, good = 0, True
while True:
    b = c.recv(65536)
    if not b:
        break
    good = good and b == pattern[n % 251:n % 251 + len(b)]
    n += len(b)
print("ok" if good else "differs", n)
)");
  Result received;
  std::thread rx([&] {
    received = Run({"/usr/bin/python3", "-c", receiver}, env("plain"));
  });
  Result sent = Run({Runfile("clash_probe"), "send", std::to_string(port),
                     std::to_string(kBytes)},
                    env("clash"));
  rx.join();
  unlink(key_path);
  EXPECT_TRUE(Exited(sent, 0)) << sent.err;
  EXPECT_TRUE(Exited(received, 0)) << received.err;
  EXPECT_EQ(received.out, absl::StrCat("ok ", kBytes, "\n"))
      << "receiver: " << received.err << "\nsender: " << sent.err;
}

TEST_F(PreloadTest, ADaemonsDoubleForkRunsTheGrandchild) {
  // The child's engine never started its threads: forking again must not
  // touch the thread it never had.
  Result r = Probe("fork-twice", {Real(), Volume(), "DISKWIRE_SELECT=1"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_THAT(r.out, HasSubstr("grandchild exited 7\n")) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("diskwire: fatal")));
}

}  // namespace
}  // namespace diskwire::testing_shim
