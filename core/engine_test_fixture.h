// File: core/engine_test_fixture.h
// The fixture of the engine's stories (engine_test.cc, recv_path_test.cc):
// two engines in one process, joined by a real loopback TCP connection and
// sharing a real directory volume; the application side is played by calling
// the Engine API as the shim does.

#ifndef DISKWIRE_CORE_ENGINE_TEST_FIXTURE_H_
#define DISKWIRE_CORE_ENGINE_TEST_FIXTURE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "core/engine_impl.h"
#include "core/fake_os_calls.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"

namespace diskwire {

class EngineTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-engine-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
              0);
    ASSERT_EQ(listen(listener_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }

  void TearDown() override {
    a_.reset();
    b_.reset();
    close(listener_);
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<EngineImpl> MakeEngine(const std::string& node, Mode mode) {
    Config c = base_config_;
    c.send_volume = c.recv_volume = dir_;
    c.select = *Selector::Parse(absl::StrCat(port_));
    c.mode = mode;
    c.node = node;
    c.detect_ms = detect_ms_;
    c.heartbeat_ms = heartbeat_ms_;
    c.peer_timeout_ms = std::max<int64_t>(1500, 3 * heartbeat_ms_);
    c.poll_ms = 5;
    if (getenv("DW_TEST_DEBUG") != nullptr) {
      c.log_level = LogLevel::kDebug;
      c.log_sink = LogSink::kStderr;  // not syslog
    } else {
      c.log_level = LogLevel::kWarn;
    }
    auto e = EngineImpl::Create(c, &os_, RealClock::Get());
    EXPECT_THAT(e, IsOk());
    return std::move(*e);
  }

  // Connects a client socket owned by a_ to a server socket owned by b_.
  void Connect(Mode mode = Mode::kFailover) {
    a_ = MakeEngine("a", mode);
    b_ = MakeEngine("b", mode);
    ConnectEngines();
  }

  // A client socket owned by a_, connected to server_, accepted by nobody's
  // engine yet.
  void ConnectClient() {
    client_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    ASSERT_TRUE(
        a_->Connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            .ok());
    server_ = accept(listener_, nullptr, nullptr);
    ASSERT_GE(server_, 0);
  }

  // As Connect(), with the engines a test made.
  void ConnectEngines() {
    ConnectClient();
    b_->OnAccept(listener_, server_);
    ASSERT_TRUE(a_->Owns(client_));
    ASSERT_TRUE(b_->Owns(server_));
  }

  static ssize_t Send(EngineImpl* e, int fd, const char* data, size_t n) {
    iovec iov{const_cast<char*>(data), n};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = e->SendMsg(fd, &m, 0);
    if (!r.ok()) errno = r.error;
    return r.value;
  }

  static ssize_t Recv(EngineImpl* e, int fd, char* data, size_t n) {
    iovec iov{data, n};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    SysResult r = e->Recv(fd, &m, 0);  // as recv(2) does
    if (!r.ok()) errno = r.error;
    return r.value;
  }

  static std::string RandomBytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    return s;
  }

  // Sends `data` in random chunks, then shuts down writing.
  static void SendAll(EngineImpl* e, int fd, const std::string& data,
                      uint32_t seed) {
    std::mt19937 rng(seed);
    size_t off = 0;
    while (off < data.size()) {
      size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 70000);
      ssize_t r = Send(e, fd, data.data() + off, n);
      ASSERT_GT(r, 0) << strerror(errno);
      off += r;
    }
    ASSERT_EQ(e->Shutdown(fd, SHUT_WR).value, 0);
  }

  // Reads until end of file; `progress` counts the bytes read so far.
  static std::string RecvAll(EngineImpl* e, int fd,
                             std::atomic<size_t>* progress) {
    std::string out;
    char buf[50000];
    while (true) {
      ssize_t r = Recv(e, fd, buf, sizeof(buf));
      if (r <= 0) {
        EXPECT_EQ(r, 0) << strerror(errno);
        break;
      }
      out.append(buf, r);
      progress->store(out.size());
    }
    return out;
  }

  // Makes the client's connection look as if its peer went silent
  // (FakeOsCalls::Stall) and returns how long the client's engine took to
  // move it to storage (it gives up after `limit`).
  absl::Duration TimeSilentCut(absl::Duration limit) {
    Session* s = a_->SessionFor(client_);
    const absl::Time cut = absl::Now();
    os_.Stall(client_);
    while (s->state.load() != SessionState::kStorage &&
           absl::Now() < cut + limit) {
      absl::SleepFor(absl::Milliseconds(5));  // polling a state
    }
    const absl::Duration took = absl::Now() - cut;
    os_.Clear();
    EXPECT_EQ(s->state.load(), SessionState::kStorage);
    return took;
  }

  // Forces `e` to fail over `fd`, retrying while the peer's heartbeat does not
  // list it yet.
  static void ForceFailover(EngineImpl* e, int fd) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!e->FailOver(fd, "forced by the test")) {
      ASSERT_LT(absl::Now(), deadline)
          << "the peer never became visible on the volume";
      absl::SleepFor(
          absl::Milliseconds(20));  // waiting for the peer's next heartbeat
    }
  }

  // The channels on the shared volume now (none on the healthy path).
  std::vector<std::string> ChannelsOnVolume() {
    auto volume = storage::OpenDirVolume(dir_, {});
    EXPECT_THAT(volume, IsOk());
    if (!volume.ok()) return {};
    auto channels = (*volume)->ListChannels();
    EXPECT_THAT(channels, IsOk());
    return channels.ok() ? *channels : std::vector<std::string>{};
  }

  // Waits until `e`'s heartbeat on the volume lists the session of `fd`
  // (an fd of the other engine): from then on, a failover of that side finds
  // its peer.
  void WaitUntilHeartbeatLists(const EngineImpl& e, EngineImpl* other, int fd) {
    const SessionId id = other->SessionFor(fd)->id;
    auto volume = storage::OpenDirVolume(dir_, {});
    ASSERT_THAT(volume, IsOk());
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (absl::Now() < until) {
      auto listing = (*volume)->ListHeartbeats();
      ASSERT_THAT(listing, IsOk());
      for (const storage::Heartbeat& hb : listing->heartbeats) {
        auto report = DecodeProcessReport(hb.payload);
        if (hb.process_id != e.process_id() || !report.ok()) continue;
        for (const SessionReport& r : report->sessions) {
          if (r.id == id) return;
        }
      }
      absl::SleepFor(absl::Milliseconds(10));  // polling the volume
    }
    FAIL() << "the heartbeat never listed the session";
  }

  // Streams `bytes` each way at once; once `cut_after` bytes went up, one
  // side is forced to fail over (none with `force` false: the test did).
  void RunBothWays(size_t bytes, size_t cut_after, bool cut_on_server,
                   bool force = true) {
    const std::string up = RandomBytes(bytes, 1), down = RandomBytes(bytes, 2);
    std::atomic<size_t> up_progress{0}, down_progress{0};
    std::string got_up, got_down;
    std::thread t1([&] { SendAll(a_.get(), client_, up, 3); });
    std::thread t2([&] { SendAll(b_.get(), server_, down, 4); });
    std::thread t3([&] { got_up = RecvAll(b_.get(), server_, &up_progress); });
    std::thread t4(
        [&] { got_down = RecvAll(a_.get(), client_, &down_progress); });
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (up_progress.load() < cut_after && absl::Now() < deadline) {
      absl::SleepFor(
          absl::Milliseconds(1));  // polling a byte count, not synchronising
    }
    if (!force) {
    } else if (cut_on_server) {
      ForceFailover(b_.get(), server_);
    } else {
      ForceFailover(a_.get(), client_);
    }
    t1.join();
    t2.join();
    t3.join();
    t4.join();
    EXPECT_EQ(got_up.size(), up.size());
    EXPECT_TRUE(got_up == up) << "client→server stream differs";
    EXPECT_EQ(got_down.size(), down.size());
    EXPECT_TRUE(got_down == down) << "server→client stream differs";
  }

  Config base_config_;  // settings a test changes before Connect()
  // The engines' heartbeat interval (their peer timeout is at least three of
  // them): short, so that stories about peers are quick.
  int64_t heartbeat_ms_ = 100;
  // Their DETECT_MS: the loop probes healthy sessions every detect_ms_ / 25.
  int64_t detect_ms_ = 500;
  std::string dir_;
  int listener_ = -1, client_ = -1, server_ = -1;
  uint16_t port_ = 0;
  // Both engines' calls: to libc, unless a story scripts a failure.
  FakeOsCalls os_;
  std::unique_ptr<EngineImpl> a_, b_;
};

// A SIGUSR1 handler that does nothing, with or without SA_RESTART, for the
// life of the object: a test interrupts a call blocked on another thread with
// pthread_kill(thread, SIGUSR1).
class ScopedUsr1Handler {
 public:
  explicit ScopedUsr1Handler(bool restart) {
    struct sigaction act {};
    act.sa_handler = [](int) {};
    act.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&act.sa_mask);
    sigaction(SIGUSR1, &act, &old_);
  }
  ~ScopedUsr1Handler() { sigaction(SIGUSR1, &old_, nullptr); }

 private:
  struct sigaction old_;
};

// Runs `call` on a thread and, from `after` on, sends that thread SIGUSR1
// every 20 ms (one signal could come before the call blocks); says whether
// `call` returned within `limit` of the first signal. If not, `unblock` frees
// it.
inline bool ReturnsOnSignal(const std::function<void()>& call,
                            absl::Duration after, absl::Duration limit,
                            const std::function<void()>& unblock) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    call();
    done.store(true);
  });
  absl::SleepFor(after);
  const absl::Time deadline = absl::Now() + limit;
  while (!done.load() && absl::Now() < deadline) {
    pthread_kill(t.native_handle(), SIGUSR1);
    absl::SleepFor(absl::Milliseconds(20));  // polling a flag the thread sets
  }
  const bool returned = done.load();
  if (!returned) unblock();
  t.join();
  return returned;
}

// Where two streams first differ, for failure messages.
inline size_t FirstDifference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

// Waits until both ends of the session are back on the network.
inline void WaitBothDirect(EngineImpl* a, int client, EngineImpl* b,
                           int server) {
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (a->SessionFor(client)->state.load() != SessionState::kDirect ||
         b->SessionFor(server)->state.load() != SessionState::kDirect) {
    ASSERT_LT(absl::Now(), deadline) << "the session never resumed";
    absl::SleepFor(absl::Milliseconds(5));  // polling a state
  }
}

// The domain of the file behind `fd`, asked of the kernel itself.
inline int KernelDomain(int fd) {
  int domain = -1;
  socklen_t len = sizeof(domain);
  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
  return domain;
}

}  // namespace diskwire

#endif  // DISKWIRE_CORE_ENGINE_TEST_FIXTURE_H_
