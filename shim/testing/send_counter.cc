// File: shim/testing/send_counter.cc
// A library preloaded after libdiskwire that defines sendto and sendmsg, as a
// tracer or an accelerator would: it counts the non-blocking ones that
// suppress SIGPIPE (the engine's healthy-path sends) and hands every call on.
// At exit it prints "send_counter: N engine sends" to stderr.

#include <dlfcn.h>
#include <stdio.h>
#include <sys/socket.h>

#include <atomic>

namespace {

std::atomic<long> g_engine_sends{0};

void Count(int flags) {
  constexpr int kEngine = MSG_DONTWAIT | MSG_NOSIGNAL;
  if ((flags & kEngine) == kEngine) g_engine_sends.fetch_add(1);
}

template <typename Fn>
Fn Next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

__attribute__((destructor)) void Report() {
  fprintf(stderr, "send_counter: %ld engine sends\n", g_engine_sends.load());
}

}  // namespace

extern "C" ssize_t sendto(int fd, const void* buf, size_t len, int flags,
                          const sockaddr* to, socklen_t to_len) {
  using Fn =
      ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
  static const Fn next = Next<Fn>("sendto");
  Count(flags);
  return next(fd, buf, len, flags, to, to_len);
}

extern "C" ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  using Fn = ssize_t (*)(int, const msghdr*, int);
  static const Fn next = Next<Fn>("sendmsg");
  Count(flags);
  return next(fd, msg, flags);
}
