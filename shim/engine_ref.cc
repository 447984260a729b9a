// File: shim/engine_ref.cc

#include "shim/engine_ref.h"

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/crash_handler.h"
#include "shim/hook.h"
#include "shim/process_hooks.h"
#include "shim/real_calls.h"
#include "shim/self_text.h"

namespace diskwire::shim {

thread_local int t_inside_diskwire __attribute__((tls_model("initial-exec"))) =
    0;

namespace internal {
std::atomic<Engine*> g_engine{nullptr};
}  // namespace internal

namespace {

pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
std::atomic<bool> g_engine_decided{false};
thread_local bool t_creating_engine __attribute__((tls_model("initial-exec"))) =
    false;

// One bit per fd below Engine::kMaxFds: epoll instances holding owned fds.
constexpr int kWordBits = 64;
std::atomic<uint64_t> g_epoll_fds[Engine::kMaxFds / kWordBits];

void BeforeFork() {
  if (Engine* e = CurrentEngine()) e->BeforeFork();
}
void AfterForkParent() {
  if (Engine* e = CurrentEngine()) e->AfterForkParent();
}
void AfterForkChild() {
  if (Engine* e = CurrentEngine()) e->AfterForkChild();
}

// Engine::Get comes from whichever engine the library links: core's
// (libdiskwire.so) or the test engine (libdiskwire_fake.so).
void CreateEngine() {
  Engine* engine = nullptr;
  {
    InsideDiskwire inside;
    KeepErrno keep;
    engine = Engine::Get(RealOsCalls());
  }
  if (engine != nullptr) {
    InitSelfText();
    pthread_atfork(&BeforeFork, &AfterForkParent, &AfterForkChild);
    InstallCrashHandler();
    UseForkForVfork();
    internal::g_engine.store(engine, std::memory_order_release);
  }
  g_engine_decided.store(true, std::memory_order_release);
}

}  // namespace

Engine* EnsureEngine() {
  Engine* engine = CurrentEngine();
  if (engine != nullptr || g_engine_decided.load(std::memory_order_acquire) ||
      t_creating_engine) {
    return engine;
  }
  t_creating_engine = true;
  pthread_once(&g_engine_once, &CreateEngine);
  t_creating_engine = false;
  return CurrentEngine();
}

namespace {

bool DiskwireConfigured() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (strncmp(*e, "DISKWIRE_", 9) == 0) return true;
  }
  return false;
}

// What an inherited descriptor is to the engine.
enum class Inherited { kOther, kConnectedTcp, kListeningTcp };

Inherited Classify(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return Inherited::kOther;
  int value = 0;
  socklen_t len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) != 0 ||
      (value != AF_INET && value != AF_INET6))
    return Inherited::kOther;
  len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) != 0 ||
      value != SOCK_STREAM)
    return Inherited::kOther;
  len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) != 0)
    return Inherited::kOther;
  if (value != 0) return Inherited::kListeningTcp;
  sockaddr_storage peer;
  len = sizeof(peer);
  return Real().getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0
             ? Inherited::kConnectedTcp
             : Inherited::kOther;
}

// At load, before main(): the connected sockets this program inherited across
// exec (sshd re-executing itself for each connection, inetd) are handed to
// the engine, which adopts the selected ones (dormant until used); so are the
// listening ones (systemd socket activation), which it advertises. Costs one
// readdir of /proc/self/fd, and nothing when no DISKWIRE_ variable is set.
__attribute__((constructor(103))) void OfferInheritedSockets() {
  if (!DiskwireConfigured()) return;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  int found[64];
  Inherited kind[64];
  int count = 0;
  while (dirent* e = readdir(dir)) {
    const int fd = atoi(e->d_name);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(dir)) continue;
    const Inherited k = count < 64 ? Classify(fd) : Inherited::kOther;
    if (k != Inherited::kOther) {
      found[count] = fd;
      kind[count++] = k;
    }
  }
  closedir(dir);
  if (count == 0) return;
  Engine* engine = EnsureEngine();
  if (engine == nullptr) return;
  InsideDiskwire inside;
  KeepErrno keep;
  for (int i = 0; i < count; ++i) {
    if (kind[i] == Inherited::kListeningTcp) {
      engine->OnListen(found[i]);
    } else {
      engine->OnInherited(found[i]);
    }
  }
}

}  // namespace

Engine* ClaimDormant(Engine* engine, int fd) {
  InsideDiskwire inside;
  KeepErrno keep;
  return engine->Claim(fd) ? engine : nullptr;
}

void MarkEpollFd(int epfd) {
  if (epfd < 0 || epfd >= Engine::kMaxFds) return;
  g_epoll_fds[epfd / kWordBits].fetch_or(uint64_t{1} << (epfd % kWordBits),
                                         std::memory_order_relaxed);
}

bool IsMarkedEpollFd(int epfd) {
  if (epfd < 0 || epfd >= Engine::kMaxFds) return false;
  return (g_epoll_fds[epfd / kWordBits].load(std::memory_order_relaxed) >>
          (epfd % kWordBits)) &
         1;
}

void UnmarkEpollFd(int epfd) {
  if (epfd < 0 || epfd >= Engine::kMaxFds) return;
  g_epoll_fds[epfd / kWordBits].fetch_and(~(uint64_t{1} << (epfd % kWordBits)),
                                          std::memory_order_relaxed);
}

}  // namespace diskwire::shim
