// File: shim/engine_ref.cc

#include "shim/engine_ref.h"

#include <pthread.h>

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
