// File: bench/acked_on_return.cc
// `acked_on_return [SIZE...]` streams 20,000 writes of each SIZE (default
// 16 KiB, 128 KiB and 1 MiB) over loopback to a reader thread and prints the
// share of each write that the peer's kernel had already acknowledged when
// write() returned (1 - SIOCOUTQ / SIZE, summed). The healthy send path
// copies only the rest into the replay ring (core/data_path.cc KeepSent):
// this is the share of the copy it spares, without diskwire loaded.

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace {

double AckedShare(size_t size) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("listen");
    exit(1);
  }
  std::thread reader([listener] {
    const int fd = accept(listener, nullptr, nullptr);
    std::vector<char> buf(1 << 20);
    while (read(fd, buf.data(), buf.size()) > 0) {
    }
    close(fd);
  });
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    perror("connect");
    exit(1);
  }
  std::vector<char> data(size, 'x');
  double written = 0, unacked = 0;
  for (int i = 0; i < 20000; ++i) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n <= 0) {
      perror("write");
      exit(1);
    }
    int queued = 0;
    ioctl(fd, SIOCOUTQ, &queued);
    written += static_cast<double>(n);
    unacked += static_cast<double>(std::min<ssize_t>(queued, n));
  }
  close(fd);
  reader.join();
  close(listener);
  return 1 - unacked / written;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes = {16 << 10, 128 << 10, 1 << 20};
  if (argc > 1) sizes.clear();
  for (int i = 1; i < argc; ++i) sizes.push_back(strtoul(argv[i], nullptr, 0));
  printf(
      "loopback, one reader thread: share of a write acknowledged when "
      "write() returns\n");
  for (size_t size : sizes) {
    printf("  %8zu-byte writes: %.3f\n", size, AckedShare(size));
  }
  return 0;
}
