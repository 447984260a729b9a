// File: shim/crash_handler.cc

#include "shim/crash_handler.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "shim/hook.h"
#include "shim/raw_syscall.h"
#include "shim/real_calls.h"
#include "shim/self_text.h"

namespace diskwire::shim {
namespace {

constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr int kMaxFrames = 48;

#define DW_STR_(x) #x
#define DW_STR(x) DW_STR_(x)

// libunwind's local-unwinding entry points, resolved from a private dlopen.
struct Unwinder {
  decltype(&unw_init_local2) init_local2 = nullptr;
  decltype(&unw_step) step = nullptr;
  decltype(&unw_get_reg) get_reg = nullptr;
  decltype(&unw_get_proc_name) get_proc_name = nullptr;
};

std::atomic<bool> g_installed{false};
pthread_once_t g_install_once = PTHREAD_ONCE_INIT;
Unwinder g_unwind;
// What the application installed for each fatal signal (guarded by
// g_app_lock for writers; the handler reads without it, as it must).
struct sigaction g_app[NSIG];
std::atomic_flag g_app_lock = ATOMIC_FLAG_INIT;
std::atomic<int> g_reporting{0};

bool IsFatal(int sig) {
  for (int s : kFatalSignals) {
    if (s == sig) return true;
  }
  return false;
}

// --- Async-signal-safe formatting into a fixed buffer. ---

class Line {
 public:
  Line& Str(const char* s) {
    while (*s != '\0' && len_ < sizeof(buf_) - 1) buf_[len_++] = *s++;
    return *this;
  }
  Line& Hex(uintptr_t v) {
    char digits[2 * sizeof(v)];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0);
    Str("0x");
    while (n > 0 && len_ < sizeof(buf_) - 1) buf_[len_++] = digits[--n];
    return *this;
  }
  Line& Dec(long v) {
    char digits[24];
    int n = 0;
    if (v < 0) {
      Str("-");
      v = -v;
    }
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len_ < sizeof(buf_) - 1) buf_[len_++] = digits[--n];
    return *this;
  }
  void Print() {
    buf_[len_] = '\0';
    RawWriteStderr(buf_);
    len_ = 0;
  }

 private:
  char buf_[512];
  size_t len_ = 0;
};

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
  }
  return "signal";
}

bool InOurText(uintptr_t ip) {
  return InDiskwireText(reinterpret_cast<const void*>(ip));
}

// Collects the interrupted thread's return addresses, innermost first.
int CollectFrames(void* ucontext, uintptr_t* ips) {
  if (g_unwind.init_local2 == nullptr) return 0;
  unw_cursor_t cursor;
  if (g_unwind.init_local2(&cursor, static_cast<unw_context_t*>(ucontext),
                           UNW_INIT_SIGNAL_FRAME) < 0) {
    return 0;
  }
  int n = 0;
  do {
    unw_word_t ip = 0;
    if (g_unwind.get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    ips[n++] = ip;
  } while (n < kMaxFrames && g_unwind.step(&cursor) > 0);
  return n;
}

void PrintBacktrace(int sig, const siginfo_t* info, void* ucontext,
                    const uintptr_t* ips, int n) {
  Line line;
  line.Str("diskwire: fatal ")
      .Str(SignalName(sig))
      .Str(" inside diskwire (pid ")
      .Dec(getpid());
  if (info != nullptr && info->si_code > 0) {  // Raised by the kernel: a fault.
    line.Str(", fault address ")
        .Hex(reinterpret_cast<uintptr_t>(info->si_addr));
  } else if (info != nullptr) {
    line.Str(", sent by pid ").Dec(info->si_pid);
  }
  line.Str("); backtrace:\n").Print();
  for (int i = 0; i < n; ++i) {
    line.Str("diskwire:   #").Dec(i).Str(" ").Hex(ips[i]);
    unw_cursor_t cursor;
    char name[256];
    unw_word_t offset = 0;
    // Re-walk to frame i to name it (the cursor cannot be copied safely
    // between steps on every libunwind version).
    if (g_unwind.init_local2 != nullptr &&
        g_unwind.init_local2(&cursor, static_cast<unw_context_t*>(ucontext),
                             UNW_INIT_SIGNAL_FRAME) >= 0) {
      bool ok = true;
      for (int k = 0; k < i && ok; ++k) ok = g_unwind.step(&cursor) > 0;
      if (ok &&
          g_unwind.get_proc_name(&cursor, name, sizeof(name), &offset) == 0) {
        line.Str(" ").Str(name).Str("+").Hex(offset);
      }
    }
    if (InOurText(ips[i]))
      line.Str(" [libdiskwire+").Hex(ips[i] - SelfBase()).Str("]");
    line.Str("\n").Print();
  }
  if (n == 0) line.Str("diskwire:   (no unwinder available)\n").Print();
}

// Runs what the application asked for on `sig`, or the default action.
void Forward(int sig, siginfo_t* info, void* ucontext) {
  struct sigaction app = g_app[sig];
  if (app.sa_flags & SA_SIGINFO) {
    if (app.sa_flags & SA_RESETHAND) g_app[sig] = {};
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &app.sa_mask, &old);
    app.sa_sigaction(sig, info, ucontext);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return;
  }
  if (app.sa_handler != SIG_DFL && app.sa_handler != SIG_IGN) {
    if (app.sa_flags & SA_RESETHAND) g_app[sig] = {};
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &app.sa_mask, &old);
    app.sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return;
  }
  // Default (an ignored fault is fatal too: the kernel would force it). Let
  // the kernel act: restore the default and re-raise; the signal stays
  // blocked until this handler returns.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  Real().sigaction(sig, &dfl, nullptr);
  raise(sig);
}

void Handler(int sig, siginfo_t* info, void* ucontext) {
  const int saved_errno = errno;
  uintptr_t ips[kMaxFrames];
  const int n = CollectFrames(ucontext, ips);
  bool inside = t_inside_diskwire > 0;
  for (int i = 0; i < n && !inside; ++i) inside = InOurText(ips[i]);
  if (inside && g_reporting.fetch_add(1) == 0) {
    PrintBacktrace(sig, info, ucontext, ips, n);
  }
  Forward(sig, info, ucontext);
  errno = saved_errno;
}

void LoadUnwinder() {
  void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return;
  Unwinder u;
  u.init_local2 = reinterpret_cast<decltype(u.init_local2)>(
      dlsym(lib, DW_STR(unw_init_local2)));
  u.step = reinterpret_cast<decltype(u.step)>(dlsym(lib, DW_STR(unw_step)));
  u.get_reg =
      reinterpret_cast<decltype(u.get_reg)>(dlsym(lib, DW_STR(unw_get_reg)));
  u.get_proc_name = reinterpret_cast<decltype(u.get_proc_name)>(
      dlsym(lib, DW_STR(unw_get_proc_name)));
  if (u.init_local2 && u.step && u.get_reg && u.get_proc_name) g_unwind = u;
}

void Install() {
  InitSelfText();
  LoadUnwinder();
  struct sigaction ours {};
  ours.sa_sigaction = &Handler;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&ours.sa_mask);
  for (int sig : kFatalSignals) Real().sigaction(sig, &ours, &g_app[sig]);
  g_installed.store(true, std::memory_order_release);
}

class AppLock {
 public:
  AppLock() {
    while (g_app_lock.test_and_set(std::memory_order_acquire)) {
      sched_yield();
    }
  }
  ~AppLock() { g_app_lock.clear(std::memory_order_release); }
};

// Is `sig` one whose application handler we keep instead of installing?
bool Forwarded(int sig) {
  return sig > 0 && sig < NSIG && IsFatal(sig) &&
         g_installed.load(std::memory_order_acquire);
}

}  // namespace

void InstallCrashHandler() { pthread_once(&g_install_once, &Install); }

}  // namespace diskwire::shim

using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(int, sigaction,
        (int sig, const struct sigaction* act, struct sigaction* old)) {
  if (!Forwarded(sig)) return Real().sigaction(sig, act, old);
  AppLock lock;
  if (old != nullptr) *old = g_app[sig];
  if (act != nullptr) g_app[sig] = *act;
  return 0;
}

DW_HOOK(sighandler_t, signal, (int sig, sighandler_t handler)) {
  if (!Forwarded(sig)) return Real().signal(sig, handler);
  AppLock lock;
  const sighandler_t previous = g_app[sig].sa_handler;
  g_app[sig] = {};
  g_app[sig].sa_handler = handler;
  g_app[sig].sa_flags = SA_RESTART;  // signal()'s BSD semantics in glibc.
  return previous;
}
