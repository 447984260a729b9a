// A program that exports its own functions under the names of a library the
// engine uses, as one statically linked with another xxhash (whose XXH3
// before 0.8 hashed differently) and built with -rdynamic would. It listens
// on a loopback port (so that the engine starts and publishes a heartbeat),
// prints "listening" and waits to be killed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>

extern "C" {
// Not XXH3: a program's own function of that name.
uint64_t XXH3_64bits(const void*, size_t) { return 42; }
uint64_t XXH3_64bits_withSeed(const void*, size_t, uint64_t) { return 42; }
}

int main() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(fd, 1) != 0) {
    perror("clash_probe");
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  for (;;) pause();
}
