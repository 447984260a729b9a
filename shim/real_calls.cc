// File: shim/real_calls.cc

#include "shim/real_calls.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "shim/raw_syscall.h"

namespace diskwire::shim {
namespace internal {

RealCalls g_real;
std::atomic<bool> g_real_ready{false};
bool g_sends_are_libcs = false;

namespace {

pthread_once_t g_once = PTHREAD_ONCE_INIT;
// Depth of resolution on this thread: non-zero while dlsym runs here.
thread_local int t_resolving = 0;

// Writes a message to stderr through the kernel directly: the table is not
// usable yet.
void WriteError(const char* a, const char* b, const char* c) {
  RawWriteStderr(a);
  RawWriteStderr(b);
  RawWriteStderr(c);
}

// The address range of the object this code is linked into (the lowest and
// highest of its loaded segments). One dl_iterate_phdr walk: dladdr() per
// symbol would cost ~90k instructions each at every process start.
struct OwnRange {
  uintptr_t begin = 0;
  uintptr_t end = 0;
  bool Contains(const void* p) const {
    const auto a = reinterpret_cast<uintptr_t>(p);
    return a >= begin && a < end;
  }
};

int FindOwnRange(dl_phdr_info* info, size_t, void* data) {
  auto* range = static_cast<OwnRange*>(data);
  const auto self = reinterpret_cast<uintptr_t>(&FindOwnRange);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    lo = std::min<uintptr_t>(lo, info->dlpi_addr + ph.p_vaddr);
    hi = std::max<uintptr_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
  }
  if (self < lo || self >= hi) return 0;
  *range = {lo, hi};
  return 1;
}

// Resolves one symbol; aborts on a circular reference.
void* Resolve(const char* name, const OwnRange& own) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn != nullptr && own.Contains(fn)) {
    WriteError("diskwire: circular reference resolving ", name,
               ": dlsym(RTLD_NEXT) found diskwire itself (loaded twice, or "
               "linked into the preloaded program?)\n");
    abort();
  }
  return fn;
}

// Whether `fn` lies in the C library's loaded object (its file is libc.so.N).
struct LibcLookup {
  uintptr_t address;
  bool in_libc = false;
};
int FindLibc(dl_phdr_info* info, size_t, void* data) {
  auto* lookup = static_cast<LibcLookup*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type != PT_LOAD || lookup->address < begin ||
        lookup->address >= begin + ph.p_memsz) {
      continue;
    }
    const char* slash = strrchr(info->dlpi_name, '/');
    const char* file = slash != nullptr ? slash + 1 : info->dlpi_name;
    lookup->in_libc = strncmp(file, "libc.so.", 8) == 0;
    return 1;
  }
  return 0;
}
bool InLibc(const void* fn) {
  LibcLookup lookup{reinterpret_cast<uintptr_t>(fn)};
  dl_iterate_phdr(&FindLibc, &lookup);
  return lookup.in_libc;
}

void ResolveInto(RealCalls* table) {
  ++t_resolving;
  if (t_resolving > 4) {
    WriteError("diskwire: ", "symbol resolution",
               " re-entered itself too deeply\n");
    abort();
  }
  OwnRange own;
  dl_iterate_phdr(&FindOwnRange, &own);
#define DW_RESOLVE_REAL_(ret, name, params) \
  table->name = reinterpret_cast<ret(*) params>(Resolve(#name, own));
  DW_REAL_CALLS(DW_RESOLVE_REAL_)
#undef DW_RESOLVE_REAL_
  g_sends_are_libcs = InLibc(reinterpret_cast<const void*>(table->sendto)) &&
                      InLibc(reinterpret_cast<const void*>(table->sendmsg));
  --t_resolving;
}

void ResolveOnce() {
  ResolveInto(&g_real);
  g_real_ready.store(true, std::memory_order_release);
}

// Resolves before main, so that the hooks' fast path finds the table ready.
__attribute__((constructor(101))) void ResolveAtLoad() { ResolveRealCalls(); }

}  // namespace

const RealCalls& ResolveRealCalls() {
  if (t_resolving > 0) {
    // Re-entered from dlsym on this thread: pthread_once would deadlock.
    // Resolving again into the same table writes the same values.
    ResolveInto(&g_real);
    return g_real;
  }
  pthread_once(&g_once, ResolveOnce);
  return g_real;
}

}  // namespace internal

namespace {

// Runs `call` and returns its value with its errno; the caller's errno is
// restored.
template <typename Call>
SysResult Capture(Call call) {
  const int saved = errno;
  const ssize_t value = call();
  const int error = value == -1 ? errno : 0;
  errno = saved;
  return {value, error};
}

// A send that cannot block (MSG_DONTWAIT: every send of the healthy path)
// enters the kernel directly when the table's send functions are libc's own,
// not those of a library preloaded after diskwire. libc's wrapper costs the
// errno round trip and, once the process has threads (the engine's), its
// cancellation bookkeeping: about 60 instructions and two atomic
// read-modify-writes a send. The call stays a cancellation point: one that is
// pending acts here, as it would in libc's.
bool SendStraightToKernel(int flags) {
  if ((flags & MSG_DONTWAIT) == 0 || !SendsAreLibcs()) return false;
  pthread_testcancel();
  return true;
}

SysResult FromKernel(long r) {
  if (r < 0 && r > -4096) return SysResult::Fail(static_cast<int>(-r));
  return SysResult::Ok(r);
}

// OsCalls on the real libc functions. Stateless, hence thread-safe.
class RealOsCallsImpl final : public OsCalls {
 public:
  SysResult SocketPair(int domain, int type, int protocol,
                       int fds[2]) override {
    return Capture(
        [&] { return Real().socketpair(domain, type, protocol, fds); });
  }
  SysResult Socket(int domain, int type, int protocol) override {
    return Capture([&] { return Real().socket(domain, type, protocol); });
  }
  SysResult Bind(int fd, const sockaddr* addr, socklen_t len) override {
    return Capture([&] { return Real().bind(fd, addr, len); });
  }
  SysResult Listen(int fd, int backlog) override {
    return Capture([&] { return Real().listen(fd, backlog); });
  }
  SysResult Connect(int fd, const sockaddr* addr, socklen_t len) override {
    return Capture([&] { return Real().connect(fd, addr, len); });
  }
  SysResult Accept4(int fd, sockaddr* addr, socklen_t* len,
                    int flags) override {
    return Capture([&] { return Real().accept4(fd, addr, len, flags); });
  }
  SysResult Close(int fd) override {
    return Capture([&] { return Real().close(fd); });
  }
  SysResult Dup3(int oldfd, int newfd, int flags) override {
    return Capture([&] { return Real().dup3(oldfd, newfd, flags); });
  }
  SysResult Fcntl(int fd, int cmd, int arg) override {
    return Capture([&] { return Real().fcntl(fd, cmd, arg); });
  }
  SysResult Ioctl(int fd, unsigned long request, int* arg) override {
    return Capture([&] { return Real().ioctl(fd, request, arg); });
  }
  SysResult SendMsg(int fd, const msghdr* msg, int flags) override {
    if (SendStraightToKernel(flags)) {
      return FromKernel(
          RawSyscall(SYS_sendmsg, fd, reinterpret_cast<long>(msg), flags));
    }
    return Capture([&] { return Real().sendmsg(fd, msg, flags); });
  }
  SysResult RecvMsg(int fd, msghdr* msg, int flags) override {
    return Capture([&] { return Real().recvmsg(fd, msg, flags); });
  }
  SysResult SendTo(int fd, const void* buf, size_t len, int flags,
                   const sockaddr* to, socklen_t to_len) override {
    if (SendStraightToKernel(flags)) {
      return FromKernel(RawSyscall(
          SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(len),
          flags, reinterpret_cast<long>(to), static_cast<long>(to_len)));
    }
    return Capture(
        [&] { return Real().sendto(fd, buf, len, flags, to, to_len); });
  }
  SysResult RecvFrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                     socklen_t* from_len) override {
    return Capture(
        [&] { return Real().recvfrom(fd, buf, len, flags, from, from_len); });
  }
  SysResult Read(int fd, void* buf, size_t len) override {
    return Capture([&] { return Real().read(fd, buf, len); });
  }
  SysResult Write(int fd, const void* buf, size_t len) override {
    return Capture([&] { return Real().write(fd, buf, len); });
  }
  SysResult Shutdown(int fd, int how) override {
    return Capture([&] { return Real().shutdown(fd, how); });
  }
  SysResult GetSockOpt(int fd, int level, int name, void* val,
                       socklen_t* len) override {
    return Capture(
        [&] { return Real().getsockopt(fd, level, name, val, len); });
  }
  SysResult SetSockOpt(int fd, int level, int name, const void* val,
                       socklen_t len) override {
    return Capture(
        [&] { return Real().setsockopt(fd, level, name, val, len); });
  }
  SysResult GetSockName(int fd, sockaddr* addr, socklen_t* len) override {
    return Capture([&] { return Real().getsockname(fd, addr, len); });
  }
  SysResult GetPeerName(int fd, sockaddr* addr, socklen_t* len) override {
    return Capture([&] { return Real().getpeername(fd, addr, len); });
  }
  SysResult Poll(pollfd* fds, nfds_t nfds, int timeout_ms) override {
    return Capture([&] { return Real().poll(fds, nfds, timeout_ms); });
  }
  SysResult EpollCreate1(int flags) override {
    return Capture([&] { return Real().epoll_create1(flags); });
  }
  SysResult EpollCtl(int epfd, int op, int fd, epoll_event* event) override {
    return Capture([&] { return Real().epoll_ctl(epfd, op, fd, event); });
  }
  SysResult EpollWait(int epfd, epoll_event* events, int maxevents,
                      int timeout_ms) override {
    return Capture(
        [&] { return Real().epoll_wait(epfd, events, maxevents, timeout_ms); });
  }
  SysResult EventFd(unsigned int initval, int flags) override {
    return Capture([&] { return Real().eventfd(initval, flags); });
  }
};

}  // namespace
}  // namespace diskwire::shim

namespace diskwire {

namespace {
// Constant-initialised (no guard, usable before static constructors run) and
// never destroyed (the exit drain still uses it).
union NeverDestroyed {
  constexpr NeverDestroyed() : calls() {}
  ~NeverDestroyed() {}
  shim::RealOsCallsImpl calls;
};
constinit NeverDestroyed g_real_os_calls;
}  // namespace

OsCalls* RealOsCalls() { return &g_real_os_calls.calls; }

}  // namespace diskwire
