// The LUN half of storage_bench: one image file as two loop devices (two
// hosts' views of a shared LUN, a page cache each), formatted by FormatLun.
//  - latency: a writer process appends 64-byte records through device A, a
//    reader process reads them through device B as fast as it can poll;
//    latency = reader's CLOCK_REALTIME minus the record's timestamp. The
//    baseline is a raw aligned O_DIRECT write of one block on A followed by
//    an O_DIRECT read of it on B, timed the same way (write start to read
//    end), in the same run;
//  - throughput: Append() of 16 x 16 KiB batches on A (trimming as it goes)
//    against raw sequential O_DIRECT writes of the same 256 KiB chunks on A.
// Targets (issue 14): latency p50 and p99 <= 2 x raw, throughput >= 0.5 x.

#include "bench/storage_bench_lun.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "storage/lun_device.h"
#include "storage/lun_format.h"
#include "storage/lun_volume.h"

namespace diskwire::storage {
namespace {

using bench::Die;
using bench::Now;
using bench::RealtimeNs;

constexpr int kSamples = 2000;
constexpr size_t kPayload = 16 << 10;
constexpr size_t kPerBatch = 16;
constexpr size_t kChunk = kPayload * kPerBatch;

std::string Run(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[256] = {};
  std::string out = fgets(buf, sizeof(buf), p) ? buf : "";
  pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

struct Percentiles {
  double p50 = 0, p99 = 0;
};
Percentiles Of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 99 / 100]};
}

// Raw: write one block O_DIRECT on `a`, read it O_DIRECT on `b`; us each.
Percentiles RawRoundTrip(const std::string& a, const std::string& b,
                         uint64_t at) {
  auto wa = LunDevice::Open(a, true);
  auto rb = LunDevice::Open(b, false);
  if (!wa.ok() || !rb.ok()) Die("open devices", wa.status());
  const uint32_t align = (*wa)->align();
  std::vector<double> lat;
  std::string block(align, 'r');
  for (int i = 0; i < kSamples; ++i) {
    std::memcpy(block.data(), &i, sizeof(i));
    const uint64_t start = RealtimeNs();
    if (absl::Status s = (*wa)->Write(at, block); !s.ok()) Die("raw write", s);
    auto got = (*rb)->Read(at, align);
    if (!got.ok()) Die("raw read", got.status());
    lat.push_back((RealtimeNs() - start) / 1e3);
  }
  return Of(lat);
}

Percentiles AppendToVisible(const std::string& a, const std::string& b) {
  int go[2];
  if (pipe(go) != 0) Die("pipe", absl::ErrnoToStatus(errno, ""));
  const pid_t child = fork();
  if (child == 0) {  // the writer: host a
    close(go[1]);
    LunVolumeOptions o;
    o.node = "a";
    auto v = OpenLunVolume(a, o);
    if (!v.ok()) Die("open a", v.status());
    auto w = (*v)->OpenWriter("lat", {});
    if (!w.ok()) Die("writer", w.status());
    char c;
    if (read(go[0], &c, 1) != 1) _exit(1);
    Record r;
    r.payload.assign(64, 'p');
    for (int i = 0; i < kSamples; ++i) {
      r.header.stream_offset = i * 64;
      r.header.timestamp_ns = RealtimeNs();
      if (absl::Status s = (*w)->Append({&r, 1}); !s.ok()) Die("append", s);
      if (i % 64 == 63) (void)(*w)->TrimBelow(r.header.stream_offset - 4096);
      const timespec gap = {0, 300'000};  // pacing, not synchronisation
      nanosleep(&gap, nullptr);
    }
    // Stay until the reader is done: the slot is released at exit.
    if (read(go[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(go[0]);
  LunVolumeOptions o;
  o.node = "b";
  auto v = OpenLunVolume(b, o);
  if (!v.ok()) Die("open b", v.status());
  auto reader = (*v)->OpenReader("lat", 0);
  if (!reader.ok()) Die("reader", reader.status());
  if (write(go[1], "g", 1) != 1) Die("pipe write", absl::OkStatus());
  std::vector<double> lat;
  std::vector<Record> out;
  const double deadline = Now() + 30;
  while (static_cast<int>(lat.size()) < kSamples && Now() < deadline) {
    out.clear();
    auto n = (*reader)->ReadAvailable(&out, 1 << 20);
    if (!n.ok()) Die("read", n.status());
    const uint64_t now = RealtimeNs();
    for (const Record& r : out)
      lat.push_back((now - r.header.timestamp_ns) / 1e3);
  }
  close(go[1]);
  waitpid(child, nullptr, 0);
  return Of(lat);
}

double RawThroughput(const std::string& a, uint64_t at, size_t total) {
  auto d = LunDevice::Open(a, true);
  if (!d.ok()) Die("open", d.status());
  const std::string chunk(kChunk, 'w');
  const double start = Now();
  for (size_t done = 0; done < total; done += kChunk) {
    if (absl::Status s = (*d)->Write(at + done % (64 << 20), chunk); !s.ok())
      Die("raw write", s);
  }
  return total / (Now() - start) / 1e6;
}

double AppendThroughput(const std::string& a, size_t total) {
  LunVolumeOptions o;
  o.node = "a";
  auto v = OpenLunVolume(a, o);
  if (!v.ok()) Die("open", v.status());
  auto w = (*v)->OpenWriter("tput", {});
  if (!w.ok()) Die("writer", w.status());
  std::vector<Record> batch(kPerBatch);
  for (Record& r : batch) r.payload.assign(kPayload, 'a');
  uint64_t off = 0;
  const double start = Now();
  for (size_t done = 0; done < total; done += kChunk) {
    for (Record& r : batch) {
      r.header.stream_offset = off;
      off += kPayload;
    }
    if (absl::Status s = (*w)->Append(batch); !s.ok()) Die("append", s);
    // A reader that keeps up: everything but the last batch is acknowledged.
    if (absl::Status s = (*w)->TrimBelow(off - kChunk); !s.ok()) Die("trim", s);
  }
  const double mbs = total / (Now() - start) / 1e6;
  (void)(*w)->Close();
  (void)(*v)->RemoveChannel("tput");
  return mbs;
}

}  // namespace

bool RunLunBench(const std::string& dir, size_t mib) {
  if (geteuid() != 0 || access("/dev/loop-control", F_OK) != 0) {
    std::printf(
        "LUN: SKIPPED (loop devices need root and /dev/loop-control)\n");
    return true;
  }
  const std::string image = dir + "/lun.img";
  const int fd = open(image.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) Die("image", absl::ErrnoToStatus(errno, image));
  // Written through once: a LUN's blocks exist. A sparse image's first write
  // to a block allocates it in the filesystem below (milliseconds, now and
  // then), which the raw baseline, rewriting one block, never pays.
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 1024; ++i) {
    if (write(fd, zeros.data(), zeros.size()) !=
        static_cast<ssize_t>(zeros.size())) {
      Die("image", absl::ErrnoToStatus(errno, image));
    }
  }
  fsync(fd);
  close(fd);
  LunFormatRequest req;
  req.slots = 8;
  auto g = FormatLun(image, req, false);
  if (!g.ok()) Die("format", g.status());
  const std::string a = Run("/sbin/losetup -f --show " + image);
  const std::string b = Run("/sbin/losetup -f --show " + image);
  if (a.empty() || b.empty()) Die("losetup", absl::UnknownError("failed"));
  // Raw I/O goes to the last slot's extents, which the runs below leave
  // alone (they use the first slots).
  const uint64_t raw_at = g->extent_offset(g->slots - 1, 0);
  double raw_mbs = 0, app_mbs = 0;
  const size_t total = std::min<size_t>(mib, 256) << 20;
  for (int round = 0; round < 3; ++round) {  // best of 3, alternating
    if (round % 2 == 1) app_mbs = std::max(app_mbs, AppendThroughput(a, total));
    raw_mbs = std::max(raw_mbs, RawThroughput(a, raw_at, total));
    if (round % 2 == 0) app_mbs = std::max(app_mbs, AppendThroughput(a, total));
  }
  const Percentiles raw = RawRoundTrip(a, b, raw_at);
  const Percentiles lun = AppendToVisible(a, b);
  for (const std::string& d : {a, b}) {
    if (std::system(("/sbin/losetup -d " + d).c_str()) != 0) {
      std::fprintf(stderr, "storage_bench: cannot detach %s\n", d.c_str());
    }
  }
  unlink(image.c_str());
  std::printf(
      "LUN (one image, two loop devices %s %s, O_DIRECT):\n"
      "  throughput: raw O_DIRECT %.0f MB/s, append %.0f MB/s, ratio %.2f\n"
      "  write on A -> visible on B: raw p50 %.1f us p99 %.1f us; append "
      "p50 %.1f us p99 %.1f us; ratio p50 %.2f p99 %.2f\n",
      a.c_str(), b.c_str(), raw_mbs, app_mbs, app_mbs / raw_mbs, raw.p50,
      raw.p99, lun.p50, lun.p99, lun.p50 / raw.p50, lun.p99 / raw.p99);
  const bool ok = app_mbs >= 0.5 * raw_mbs && lun.p50 <= 2 * raw.p50 &&
                  lun.p99 <= 2 * raw.p99;
  std::printf("LUN targets (throughput >= 0.5 x raw, latency <= 2 x raw): %s\n",
              ok ? "met" : "NOT met");
  return ok;
}

}  // namespace diskwire::storage
