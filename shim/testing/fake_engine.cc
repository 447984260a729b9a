// File: shim/testing/fake_engine.cc
// A test Engine for the shim's preload tests, linked into
// libdiskwire_fake.so in place of core's engine. It selects TCP connections by
// port, passes every call to the real OsCalls, touches every byte it is handed
// (as the replay ring copy would, so a bad buffer faults inside diskwire),
// aborts on MSG_OOB (as a failed engine check would) and
// counts what it saw. Test programs read the counts through the extern "C"
// functions at the end.
//
// Configuration: DISKWIRE_VOLUME must be set (any value) for an engine to
// exist; DISKWIRE_SELECT is a port number, or "*" for every TCP connection.
// Thread-safe: counters are atomics, wake accounting is under a mutex.

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "core/engine.h"
#include "core/os_calls.h"

namespace diskwire {
namespace {

enum Counter {
  kSentBytes,
  kReceivedBytes,
  kSends,
  kRecvs,
  kCloses,
  kDups,
  kEpollCtls,
  kForkChildren,
  kConnects,
  kAccepts,
  kIntrospections,
  kNumCounters
};

class FakeEngine final : public Engine {
 public:
  FakeEngine(OsCalls* os, int port, bool all)
      : os_(os), port_(port), all_(all) {
    wake_ = static_cast<int>(os_->EventFd(0, EFD_CLOEXEC | EFD_NONBLOCK).value);
    if (wake_ >= 0) private_[wake_].store(1);
  }

  SysResult Connect(int fd, const sockaddr* addr, socklen_t len) override {
    SysResult r = os_->Connect(fd, addr, len);
    if (!r.ok() && r.error != EINPROGRESS) return r;
    Count(kConnects);
    OwnIfSelected(fd, addr);
    return r;
  }
  void OnAccept(int, int fd) override {
    Count(kAccepts);
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&addr), &len).ok()) {
      OwnIfSelected(fd, reinterpret_cast<sockaddr*>(&addr));
    }
  }
  void OnInherited(int) override {}
  void OnListen(int) override {}
  // UDP sockets are never candidates here: their calls pass straight through.
  void OnDatagramSocket(int) override {}
  void OnDatagramAddressChange(int) override {}
  void OnDatagramClose(int) override {}
  std::optional<SysResult> CarryDatagram(int, const msghdr*, int,
                                         int) override {
    return std::nullopt;
  }
  bool Claim(int) override { return true; }
  void OnDup(int, int newfd) override {
    Count(kDups);
    if (newfd >= 0 && newfd < kMaxFds) owned_[newfd].store(1);
  }
  SysResult Close(int fd) override {
    Count(kCloses);
    if (fd >= 0 && fd < kMaxFds) owned_[fd].store(0);
    return os_->Close(fd);
  }
  SysResult SendMsg(int fd, const msghdr* msg, int flags) override {
    Count(kSends);
    if (flags & MSG_OOB) abort();  // The probe's way to fail an engine check.
    Touch(msg);
    SysResult r = os_->SendMsg(fd, msg, flags);
    if (r.ok()) counters_[kSentBytes] += r.value;
    return r;
  }
  SysResult RecvMsg(int fd, msghdr* msg, int flags) override {
    Count(kRecvs);
    SysResult r = os_->RecvMsg(fd, msg, flags);
    if (r.ok()) counters_[kReceivedBytes] += r.value;
    return r;
  }
  SysResult Recv(int fd, msghdr* msg, int flags) override {
    return RecvMsg(fd, msg, flags);
  }
  SysResult Shutdown(int fd, int how) override {
    return os_->Shutdown(fd, how);
  }
  SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) override {
    Count(kIntrospections);
    return os_->GetSockName(fd, addr, len);
  }
  SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) override {
    Count(kIntrospections);
    return os_->GetPeerName(fd, addr, len);
  }
  SysResult GetSockOpt(int fd, int level, int name, void* val,
                       socklen_t* len) override {
    Count(kIntrospections);
    return os_->GetSockOpt(fd, level, name, val, len);
  }
  SysResult SetSockOpt(int fd, int level, int name, const void* val,
                       socklen_t len) override {
    Count(kIntrospections);
    return os_->SetSockOpt(fd, level, name, val, len);
  }
  int wake_fd() const override { return wake_; }
  // The fake never fails over: its owned fds keep their files.
  bool CheckPath(int) override { return false; }
  int FilterEpollEvents(int, epoll_event*, int n) override { return n; }
  void ConsumeWake() override {
    uint64_t value;
    os_->Read(wake_, &value, sizeof(value));
    std::lock_guard<std::mutex> lock(mu_);
    ++consumed_;
    cv_.notify_all();
  }
  void OnEpollCtl(int, int, int, const epoll_event*) override {
    Count(kEpollCtls);
  }
  void BeforeFork() override {}
  void AfterForkParent() override {}
  void AfterForkChild() override { Count(kForkChildren); }
  void BeforeExit() override {}

  void Wake() {
    const uint64_t one = 1;
    os_->Write(wake_, &one, sizeof(one));
  }
  void WaitConsumed(long n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return consumed_ >= n; });
  }
  long counter(int i) const { return counters_[i].load(); }

 private:
  void Count(Counter c) { ++counters_[c]; }

  // Reads every byte handed to SendMsg, as a copy into a replay ring would.
  static void Touch(const msghdr* msg) {
    unsigned char sum = 0;
    for (size_t i = 0; i < msg->msg_iovlen; ++i) {
      const auto* p =
          static_cast<const volatile unsigned char*>(msg->msg_iov[i].iov_base);
      for (size_t k = 0; k < msg->msg_iov[i].iov_len; ++k) sum += p[k];
    }
    sink_ = sink_ + sum;
  }

  void OwnIfSelected(int fd, const sockaddr* addr) {
    if (fd < 0 || fd >= kMaxFds) return;
    const int port =
        addr->sa_family == AF_INET
            ? ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port)
            : ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    if (all_ || port == port_) owned_[fd].store(1, std::memory_order_release);
  }

  OsCalls* const os_;
  const int port_;
  const bool all_;
  int wake_ = -1;
  static inline volatile unsigned char sink_ = 0;
  std::atomic<long> counters_[kNumCounters] = {};
  std::mutex mu_;
  std::condition_variable cv_;
  long consumed_ = 0;
};

FakeEngine* g_fake = nullptr;

}  // namespace

Engine* Engine::Get(OsCalls* os) {
  static Engine* const engine = [os]() -> Engine* {
    if (getenv("DISKWIRE_VOLUME") == nullptr) return nullptr;
    const char* select = getenv("DISKWIRE_SELECT");
    if (select == nullptr) select = "";
    const bool all = strcmp(select, "*") == 0;
    char* end = nullptr;
    const long port = all ? 0 : strtol(select, &end, 10);
    if (!all && (end == select || *end != '\0' || port <= 0 || port > 65535)) {
      fprintf(stderr,
              "diskwire: DISKWIRE_SELECT=\"%s\" is not a port or \"*\" (test "
              "engine)\n",
              select);
      return nullptr;
    }
    g_fake = new FakeEngine(os, static_cast<int>(port), all);
    return g_fake;
  }();
  return engine;
}

}  // namespace diskwire

extern "C" {

__attribute__((visibility("default"))) int diskwire_fake_wake_fd() {
  return diskwire::g_fake ? diskwire::g_fake->wake_fd() : -1;
}

__attribute__((visibility("default"))) void diskwire_fake_wake() {
  if (diskwire::g_fake) diskwire::g_fake->Wake();
}

__attribute__((visibility("default"))) void diskwire_fake_wait_consumed(
    long n) {
  if (diskwire::g_fake) diskwire::g_fake->WaitConsumed(n);
}

// Closes the engine's private wake fd with libc's close(), by name, from
// inside diskwire: the shim must let it through. Returns close()'s result.
__attribute__((visibility("default"))) int
diskwire_fake_close_private_by_name() {
  if (diskwire::g_fake == nullptr) return -1;
  const int rc = close(diskwire::g_fake->wake_fd());
  // Not a tail call: the shim knows diskwire's calls by their return address,
  // which a tail call from the outermost diskwire frame would hide.
  __asm__ volatile("" ::: "memory");
  return rc;
}

// Connects to 127.0.0.1:port with libc's socket()/connect(), by name, from
// inside diskwire; returns how many Connect calls that caused (the shim must
// not offer diskwire's own connections: 0).
__attribute__((visibility("default"))) long diskwire_fake_connect_by_name(
    int port) {
  if (diskwire::g_fake == nullptr) return -1;
  const long before = diskwire::g_fake->counter(diskwire::kConnects);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  close(fd);
  if (rc != 0) return -2;
  return diskwire::g_fake->counter(diskwire::kConnects) - before;
}

// Fills out[0..count) with the counters, in the order of enum Counter.
__attribute__((visibility("default"))) void diskwire_fake_counters(long* out,
                                                                   int count) {
  for (int i = 0; i < count && i < diskwire::kNumCounters; ++i) {
    out[i] = diskwire::g_fake ? diskwire::g_fake->counter(i) : -1;
  }
}

}  // extern "C"
