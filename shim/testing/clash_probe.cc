// A program that brings its own copies of libraries the engine uses, as one
// statically linked with them and built with -rdynamic would: it exports
//  - XXH3_64bits of its own (another xxhash, whose XXH3 before 0.8 hashed
//    differently);
//  - libsodium's hashing and comparison functions, wrong on purpose (a
//    program's own functions of those names, or another libsodium);
//  - Debian's abseil, linked from its static archives: the very symbols of the
//    engine's shared abseil, from another build.
// Without arguments it listens on a loopback port (so that the engine starts
// and publishes a heartbeat), prints "listening" and waits to be killed.
// `clash_probe send PORT BYTES` connects to 127.0.0.1:PORT, sends BYTES of a
// pattern (byte i is i % 251), shuts down writing, reads to the end and exits
// 0.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

extern "C" {
// Not XXH3: a program's own function of that name.
uint64_t XXH3_64bits(const void*, size_t) { return 42; }
uint64_t XXH3_64bits_withSeed(const void*, size_t, uint64_t) { return 42; }

// Not BLAKE2b: every hash is 0xAA bytes, every comparison "equal".
int sodium_init(void) { return 0; }
int crypto_generichash(unsigned char* out, size_t outlen, const unsigned char*,
                       unsigned long long, const unsigned char*, size_t) {
  memset(out, 0xAA, outlen);
  return 0;
}
int crypto_generichash_init(crypto_generichash_state*, const unsigned char*,
                            const size_t, const size_t) {
  return 0;
}
int crypto_generichash_update(crypto_generichash_state*, const unsigned char*,
                              unsigned long long) {
  return 0;
}
int crypto_generichash_final(crypto_generichash_state*, unsigned char* out,
                             const size_t outlen) {
  memset(out, 0xAA, outlen);
  return 0;
}
int sodium_memcmp(const void* const, const void* const, size_t) { return 0; }
}

namespace {

absl::Mutex g_mu;  // the program's own use of its abseil

int Listen() {
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

int Send(int port, size_t bytes) {
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  int fd = -1;
  for (int attempt = 0; attempt < 200; ++attempt) {  // the receiver starts
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) break;
    close(fd);
    fd = -1;
    usleep(50'000);
  }
  if (fd < 0) {
    perror("clash_probe: connect");
    return 1;
  }
  std::string chunk(65536, '\0');
  size_t sent = 0;
  while (sent < bytes) {
    const size_t n = std::min(chunk.size(), bytes - sent);
    for (size_t i = 0; i < n; ++i)
      chunk[i] = static_cast<char>((sent + i) % 251);
    ssize_t w = write(fd, chunk.data(), n);
    if (w <= 0) {
      perror("clash_probe: write");
      return 1;
    }
    absl::MutexLock lock(&g_mu);
    sent += static_cast<size_t>(w);
  }
  shutdown(fd, SHUT_WR);
  char buf[256];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
  std::printf("%s\n", absl::StrCat("sent ", sent).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "send") == 0) {
    return Send(std::atoi(argv[2]), std::strtoull(argv[3], nullptr, 10));
  }
  return Listen();
}
