// bench/core_bench: the healthy send path's cost. Sends over one loopback TCP
// connection (a thread drains the other end), alternating two loops in one
// run:
//   plain  send()
//   ring   send() + what the session adds: its mutex, the replay-ring copy,
//          and, when the ring is full, a SIOCOUTQ read (TcpProbe::AckedOffset)
//          and a trim to the peer kernel's acknowledgement
// and prints median ns per send and the ratio ring/plain, for 64-byte and
// 64 KiB sends (and 64 KiB with a 16 MiB ring, and with SO_SNDBUF clamped).
// Also times the session's additions alone and the ratio they imply. Usage:
// core_bench [seconds per size, default 2].

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "core/replay_ring.h"
#include "core/tcp_probe.h"
#include "shim/real_calls.h"

namespace diskwire {
namespace {

uint64_t g_samples = 0;  // SIOCOUTQ reads taken to make room in the ring.
uint64_t g_ring_sends = 0;

struct Connection {
  int sender = -1;
  int receiver = -1;
};

Connection ConnectLoopback() {
  Connection c;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || bind(listener, (sockaddr*)&addr, len) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, (sockaddr*)&addr, &len) != 0) {
    perror("listener");
    exit(1);
  }
  c.sender = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c.sender, (sockaddr*)&addr, len) != 0) {
    perror("connect");
    exit(1);
  }
  c.receiver = accept(listener, nullptr, nullptr);
  close(listener);
  return c;
}

// Sends `size`-byte messages for about `ns` nanoseconds; returns ns per send.
// With `ring`, does what the session's send path adds.
struct PerSend {
  double wall_ns;
  double cpu_ns;  // The sending thread's CPU time: robust to a loaded machine.
};

int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * kNsPerSec + ts.tv_nsec;
}

PerSend SendLoop(int fd, size_t size, int64_t ns, ReplayRing* ring,
                 TcpProbe* probe, absl::Mutex* mu) {
  std::string msg(size, 'm');
  RealClock* clock = RealClock::Get();
  const int64_t start = clock->NowNs();
  const int64_t cpu_start = ThreadCpuNs();
  int64_t now = start;
  uint64_t sends = 0;
  while (now - start < ns) {
    for (int i = 0; i < 64; ++i) {
      if (ring == nullptr) {
        if (send(fd, msg.data(), size, 0) != static_cast<ssize_t>(size)) {
          perror("send");
          exit(1);
        }
        continue;
      }
      absl::MutexLock lock(mu);
      while (ring->Free() < size) {  // Lazy trim by the kernel's ACK.
        ++g_samples;
        absl::StatusOr<uint64_t> acked =
            probe->AckedOffset(fd, ring->head(), false);
        if (!acked.ok()) {
          fprintf(stderr, "%s\n", acked.status().ToString().c_str());
          exit(1);
        }
        if (!ring->TrimTo(*acked).ok()) exit(1);
      }
      ssize_t n = send(fd, msg.data(), size, 0);
      if (n != static_cast<ssize_t>(size)) {
        perror("send");
        exit(1);
      }
      ring->Append(absl::string_view(msg.data(), n));
      ++g_ring_sends;
    }
    sends += 64;
    now = clock->NowNs();
  }
  return {static_cast<double>(now - start) / sends,
          static_cast<double>(ThreadCpuNs() - cpu_start) / sends};
}

double Median(const std::vector<PerSend>& runs, double PerSend::*field) {
  std::vector<double> v;
  for (const PerSend& r : runs) v.push_back(r.*field);
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The session's additions alone (mutex + ring copy), without the send: an
// absolute cost that the load on the machine distorts far less than the
// ratio of two timed send loops.
double SessionOverheadNs(size_t size) {
  ReplayRing ring;
  absl::Mutex mu;
  std::string msg(size, 'm');
  RealClock* clock = RealClock::Get();
  const uint64_t n = (size <= 64 ? 20'000'000 : 100'000);
  const int64_t start = clock->NowNs();
  for (uint64_t i = 0; i < n; ++i) {
    absl::MutexLock lock(&mu);
    if (ring.Free() < size) (void)ring.TrimTo(ring.head());
    ring.Append(msg);
  }
  return static_cast<double>(clock->NowNs() - start) / n;
}

// With `limit_sndbuf`, the sender's socket gets TcpProbe::LimitSendBuffer.
void RunSize(size_t size, double seconds, size_t ring_cap,
             bool limit_sndbuf = false) {
  Connection c = ConnectLoopback();
  TcpProbe probe(RealOsCalls());
  if (limit_sndbuf) {
    absl::Status s = probe.LimitSendBuffer(c.sender, ring_cap);
    if (!s.ok()) {
      fprintf(stderr, "%s\n", s.ToString().c_str());
      exit(1);
    }
  }
  g_samples = g_ring_sends = 0;
  std::thread drain([&] {
    std::vector<char> buf(1 << 20);
    while (read(c.receiver, buf.data(), buf.size()) > 0) {
    }
  });
  ReplayRing ring(ring_cap);
  absl::Mutex mu;
  const int kRounds = 10;
  const int64_t round_ns =
      static_cast<int64_t>(seconds * kNsPerSec / (2 * kRounds));
  std::vector<PerSend> plain, with_ring;
  for (int r = 0; r < kRounds; ++r) {  // Alternate to share the noise.
    plain.push_back(SendLoop(c.sender, size, round_ns, nullptr, &probe, &mu));
    with_ring.push_back(SendLoop(c.sender, size, round_ns, &ring, &probe, &mu));
  }
  shutdown(c.sender, SHUT_WR);
  drain.join();
  close(c.sender);
  close(c.receiver);
  const double p = Median(plain, &PerSend::wall_ns);
  const double w = Median(with_ring, &PerSend::wall_ns);
  const double pc = Median(plain, &PerSend::cpu_ns);
  const double wc = Median(with_ring, &PerSend::cpu_ns);
  const double overhead = SessionOverheadNs(size);
  const std::string sndbuf_text =
      limit_sndbuf ? std::to_string(ring_cap >> 12) + " KiB (LimitSendBuffer)"
                   : "auto";
  printf("send %zu B, ring %zu KiB, SO_SNDBUF %s\n", size, ring_cap >> 10,
         sndbuf_text.c_str());
  printf(
      "    wall: plain %9.1f ns/send (%6.2f Gbit/s)  ring %9.1f  "
      "ratio ring/plain %.3f (throughput %.3f)\n",
      p, size * 8 / p, w, w / p, p / w);
  printf("    sender CPU: plain %9.1f ns/send  ring %9.1f  ratio %.3f\n", pc,
         wc, wc / pc);
  printf(
      "    SIOCOUTQ reads/send %.3f; session overhead alone %.1f ns/send, "
      "computed ratio (plain + overhead)/plain %.4f\n",
      static_cast<double>(g_samples) / std::max<uint64_t>(1, g_ring_sends),
      overhead, (p + overhead) / p);
}

}  // namespace
}  // namespace diskwire

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2.0;
  if (seconds <= 0) {
    fprintf(stderr, "usage: core_bench [seconds per size > 0]\n");
    return 2;
  }
  const size_t kDefaultCap = diskwire::ReplayRing::kDefaultCapacity;
  for (size_t size : {size_t{64}, size_t{65536}}) {
    diskwire::RunSize(size, seconds, kDefaultCap);
  }
  // A ring larger than what the kernel may hold unacknowledged (SO_SNDBUF,
  // autotuned up to net.ipv4.tcp_wmem's max) never has to wait for ACKs.
  diskwire::RunSize(65536, seconds, 4 * kDefaultCap);
  // Or clamp the kernel's send buffer below the ring (the kernel doubles the
  // value set; SIOCOUTQ then stays under the ring's capacity).
  diskwire::RunSize(65536, seconds, kDefaultCap, /*limit_sndbuf=*/true);
  return 0;
}
