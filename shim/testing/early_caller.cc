// File: shim/testing/early_caller.cc
// A library whose constructor makes socket and file calls, preloaded after
// libdiskwire so that it initialises first: the hooks must work before the
// shim's own constructors have run. Prints "early: ..." lines to stderr.

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

__attribute__((constructor)) void CallEarly() {
  errno = 0;
  const int bad = close(-1);
  fprintf(stderr, "early: close(-1) = %d %s\n", bad, strerrorname_np(errno));
  int p[2];
  char buf[8] = {};
  const bool pipe_ok = pipe(p) == 0 && write(p[1], "pipe", 4) == 4 &&
                       read(p[0], buf, 4) == 4 && strcmp(buf, "pipe") == 0;
  fprintf(stderr, "early: pipe round trip %s\n", pipe_ok ? "ok" : "failed");
  close(p[0]);
  close(p[1]);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(l, 1);
  getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len);
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  const int rc = connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int s = accept(l, nullptr, nullptr);
  memset(buf, 0, sizeof(buf));
  const bool tcp_ok = rc == 0 && s >= 0 && send(c, "tcp!", 4, 0) == 4 &&
                      recv(s, buf, 4, MSG_WAITALL) == 4 &&
                      strcmp(buf, "tcp!") == 0;
  fprintf(stderr, "early: tcp round trip %s\n", tcp_ok ? "ok" : "failed");
  close(s);
  close(c);
  close(l);
}

}  // namespace
