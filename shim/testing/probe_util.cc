// File: shim/testing/probe_util.cc

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim/testing/probe.h"

namespace diskwire::probe {

void Line(const char* what, long value) {
  const int err = errno;
  if (value == -1) {
    const char* name = strerrorname_np(err);
    printf("%s = -1 %s\n", what, name ? name : "?");
  } else {
    printf("%s = %ld\n", what, value);
  }
  fflush(stdout);
  errno = 0;
}

void Note(const char* what, const char* text) {
  printf("%s: %s\n", what, text);
  fflush(stdout);
}

unsigned long Sum(const void* buf, size_t len) {
  unsigned long sum = 0;
  const auto* p = static_cast<const unsigned char*>(buf);
  for (size_t i = 0; i < len; ++i) sum = sum * 31 + p[i];
  return sum;
}

void Pattern(char* buf, size_t len, size_t pos) {
  for (size_t i = 0; i < len; ++i) {
    buf[i] = static_cast<char>(((pos + i) * 7 + (pos + i) / 251) & 0xff);
  }
}

size_t Opaque(size_t n) {
  volatile size_t v = n;
  return v;
}

TcpPair MakeTcpPair() {
  TcpPair p;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  p.listener = socket(AF_INET, SOCK_STREAM, 0);
  if (p.listener < 0 ||
      bind(p.listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(p.listener, 8) != 0 ||
      getsockname(p.listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("probe: listener");
    exit(2);
  }
  p.port = ntohs(addr.sin_port);
  p.client = socket(AF_INET, SOCK_STREAM, 0);
  if (p.client < 0 || connect(p.client, reinterpret_cast<sockaddr*>(&addr),
                              sizeof(addr)) != 0) {
    perror("probe: connect");
    exit(2);
  }
  p.server = accept(p.listener, nullptr, nullptr);
  if (p.server < 0) {
    perror("probe: accept");
    exit(2);
  }
  return p;
}

}  // namespace diskwire::probe
