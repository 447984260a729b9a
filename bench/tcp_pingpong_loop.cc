// File: bench/tcp_pingpong_loop.cc
// `tcp_pingpong_loop PORT N [SIZE]` connects to itself on loopback port PORT
// (listening first) and makes N rounds of: send SIZE bytes (default 64) one
// way, receive them, send them back, receive them. For counting the
// instructions of the healthy path per round under valgrind's callgrind, with
// and without diskwire selecting PORT: (Ir(N) - Ir(0)) / N
// (bench/instructions_bench.sh).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

bool ReadAll(int fd, char* buf, size_t n) {
  while (n > 0) {
    const ssize_t got = recv(fd, buf, n, 0);
    if (got <= 0) return false;
    buf += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tcp_pingpong_loop PORT ROUNDS [SIZE]\n");
    return 2;
  }
  const int port = atoi(argv[1]);
  const long rounds = atol(argv[2]);
  const size_t size = argc > 3 ? static_cast<size_t>(atol(argv[3])) : 64;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0) {
    perror("listen");
    return 1;
  }
  const int client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    perror("connect");
    return 1;
  }
  const int server = accept(listener, nullptr, nullptr);
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  char* buf = static_cast<char*>(calloc(size, 1));
  for (long i = 0; i < rounds; ++i) {
    if (send(client, buf, size, 0) != static_cast<ssize_t>(size) ||
        !ReadAll(server, buf, size) ||
        send(server, buf, size, 0) != static_cast<ssize_t>(size) ||
        !ReadAll(client, buf, size)) {
      perror("round");
      return 1;
    }
  }
  free(buf);
  close(client);
  close(server);
  close(listener);
  return 0;
}
