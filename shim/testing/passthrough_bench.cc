// File: shim/testing/passthrough_bench.cc
// Cost of the hooks on calls diskwire does not take: run it as is, then under
// LD_PRELOAD=libdiskwire.so with and without DISKWIRE_* (engine present, the
// fd unselected), and compare. Each call is a cheap syscall, so the ratio is
// an upper bound of the pass-through overhead.

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchmark/benchmark.h"

namespace {

void BM_ReadEmptyNonBlockingPipe(benchmark::State& state) {
  int p[2];
  pipe2(p, O_NONBLOCK);
  char c;
  for (auto _ : state) benchmark::DoNotOptimize(read(p[0], &c, 1));
  close(p[0]);
  close(p[1]);
}
BENCHMARK(BM_ReadEmptyNonBlockingPipe);

void BM_SendRecvUnixPair(benchmark::State& state) {
  int sp[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
  char buf[64] = {};
  for (auto _ : state) {
    benchmark::DoNotOptimize(send(sp[0], buf, sizeof(buf), 0));
    benchmark::DoNotOptimize(recv(sp[1], buf, sizeof(buf), 0));
  }
  close(sp[0]);
  close(sp[1]);
}
BENCHMARK(BM_SendRecvUnixPair);

void BM_PollOneFd(benchmark::State& state) {
  int p[2];
  pipe(p);
  pollfd pfd{p[1], POLLOUT, 0};
  for (auto _ : state) benchmark::DoNotOptimize(poll(&pfd, 1, 0));
  close(p[0]);
  close(p[1]);
}
BENCHMARK(BM_PollOneFd);

void BM_CloseBadFd(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(close(-1));
}
BENCHMARK(BM_CloseBadFd);

}  // namespace

BENCHMARK_MAIN();
