// The LUN half of storage_bench: one image file as two loop devices (two
// hosts' views of a shared LUN, a page cache each), formatted by FormatLun.
//  - latency: a writer process appends 64-byte records through device A, a
//    reader process reads them through device B as fast as it can poll;
//    latency = reader's CLOCK_REALTIME minus the record's timestamp. The
//    baseline, in the same run and timed the same way (WriteToVisible): a
//    writer process writing one aligned block per record O_DIRECT on A, a
//    reader process polling the next block O_DIRECT on B;
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
#include <functional>
#include <memory>
#include <string>
#include <utility>
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
  double first = 0;  // us until the reader saw the untimed first record
};
Percentiles Of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 99 / 100]};
}

Percentiles Median(std::vector<Percentiles> runs) {
  auto mid = [&](auto field) {
    std::vector<double> v;
    for (const Percentiles& p : runs) v.push_back(p.*field);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {mid(&Percentiles::p50), mid(&Percentiles::p99),
          mid(&Percentiles::first)};
}

// One side of a latency run: how a writer process writes record `i` stamped
// `ts`, and how a reader process collects the (index, stamp) of the records
// that became visible since its last call.
struct LatencySides {
  std::function<void(int i, uint64_t ts)> write;
  std::function<void(std::vector<std::pair<int, uint64_t>>*)> read;
};

// Both runs are timed alike: writer and reader in two processes (two hosts),
// the writer starting once the reader saw a first, untimed record (how long
// a reader takes to discover a new channel is not steady-state latency),
// then one record every 300 us; latency = the reader's clock when it sees a
// record minus the record's stamp, taken just before the write started.
// `writer` runs in a child, `reader` here; each opens its own device.
Percentiles WriteToVisible(const std::function<LatencySides()>& writer,
                           const std::function<LatencySides()>& reader) {
  int go[2], seen[2];
  if (pipe(go) != 0 || pipe(seen) != 0) {
    Die("pipe", absl::ErrnoToStatus(errno, ""));
  }
  const pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    close(seen[0]);
    LatencySides w = writer();
    char c;
    if (read(go[0], &c, 1) != 1) _exit(1);
    w.write(0, RealtimeNs());
    if (read(go[0], &c, 1) != 1) _exit(1);  // the reader saw it
    for (int i = 1; i <= kSamples; ++i) {
      w.write(i, RealtimeNs());
      const timespec gap = {0, 300'000};  // pacing, not synchronisation
      nanosleep(&gap, nullptr);
    }
    // Stay until the reader is done: a LUN slot is released at exit.
    if (read(go[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  close(go[0]);
  close(seen[1]);
  LatencySides r = reader();
  if (write(go[1], "g", 1) != 1) Die("pipe write", absl::OkStatus());
  std::vector<double> lat;
  std::vector<std::pair<int, uint64_t>> got;
  bool first = false;
  double first_us = 0;
  const double deadline = Now() + 30;
  while (static_cast<int>(lat.size()) < kSamples && Now() < deadline) {
    got.clear();
    r.read(&got);
    const uint64_t now = RealtimeNs();
    for (const auto& [i, ts] : got) {
      if (i == 0) {
        first = true;
        first_us = (now - ts) / 1e3;
        if (write(go[1], "s", 1) != 1) Die("pipe write", absl::OkStatus());
      } else {
        lat.push_back((now - ts) / 1e3);
      }
    }
  }
  if (!first || static_cast<int>(lat.size()) < kSamples) {
    Die("latency run", absl::DeadlineExceededError("records went missing"));
  }
  close(go[1]);
  waitpid(child, nullptr, 0);
  Percentiles p = Of(lat);
  p.first = first_us;
  return p;
}

// Raw: block i of a 1 MiB ring at `at` holds (magic, i, stamp), written
// O_DIRECT on `a`; the reader reads the block it expects next, O_DIRECT on
// `b`, until it holds that index.
Percentiles RawToVisible(const std::string& a, const std::string& b,
                         uint64_t at) {
  // Per run: the ring still holds the blocks of the run before.
  const uint64_t magic = 0x4457524157424c4bull ^ RealtimeNs();
  auto ring = [at](uint32_t align, int i) {
    return at + static_cast<uint64_t>(i) % ((1 << 20) / align) * align;
  };
  auto writer = [&]() {
    auto dev = std::shared_ptr<LunDevice>(LunDevice::Open(a, true).value());
    return LatencySides{
        [dev, ring, magic](int i, uint64_t ts) {
          std::string block(dev->align(), '\0');
          const uint64_t fields[3] = {magic, static_cast<uint64_t>(i), ts};
          std::memcpy(block.data(), fields, sizeof(fields));
          absl::Status s = dev->Write(ring(dev->align(), i), block);
          if (!s.ok()) Die("raw write", s);
        },
        nullptr};
  };
  auto reader = [&]() {
    auto dev = std::shared_ptr<LunDevice>(LunDevice::Open(b, false).value());
    auto next = std::make_shared<int>(0);
    return LatencySides{
        nullptr,
        [dev, next, ring, magic](std::vector<std::pair<int, uint64_t>>* out) {
          for (;;) {
            auto block = dev->Read(ring(dev->align(), *next), dev->align());
            if (!block.ok()) Die("raw read", block.status());
            uint64_t fields[3];
            std::memcpy(fields, block->data(), sizeof(fields));
            if (fields[0] != magic || fields[1] != static_cast<uint64_t>(*next))
              return;
            out->emplace_back((*next)++, fields[2]);
          }
        }};
  };
  return WriteToVisible(writer, reader);
}

// The LUN backend: 64-byte records appended to a channel on `a` (trimmed
// as a peer would acknowledge them), tailed by a ChannelReader on `b`.
// `channel`: a new one per run (a finished run's channel stays readable
// for a lease).
Percentiles AppendToVisible(const std::string& a, const std::string& b,
                            const std::string& channel) {
  auto writer = [&]() {
    LunVolumeOptions o;
    o.node = "a";
    auto v = std::shared_ptr<Volume>(OpenLunVolume(a, o).value());
    auto w = std::shared_ptr<ChannelWriter>(v->OpenWriter(channel, {}).value());
    return LatencySides{[v, w](int i, uint64_t ts) {
                          Record r;
                          r.payload.assign(64, 'p');
                          r.header.stream_offset =
                              static_cast<uint64_t>(i) * 64;
                          r.header.timestamp_ns = ts;
                          if (absl::Status s = w->Append({&r, 1}); !s.ok())
                            Die("append", s);
                          if (i % 64 == 63)
                            (void)w->TrimBelow(r.header.stream_offset - 4096);
                        },
                        nullptr};
  };
  auto reader = [&]() {
    LunVolumeOptions o;
    o.node = "b";
    auto v = std::shared_ptr<Volume>(OpenLunVolume(b, o).value());
    auto r = std::shared_ptr<ChannelReader>(v->OpenReader(channel, 0).value());
    return LatencySides{
        nullptr, [v, r](std::vector<std::pair<int, uint64_t>>* out) {
          std::vector<Record> records;
          auto n = r->ReadAvailable(&records, 1 << 20);
          if (!n.ok()) Die("read", n.status());
          for (const Record& rec : records) {
            out->emplace_back(static_cast<int>(rec.header.stream_offset / 64),
                              rec.header.timestamp_ns);
          }
        }};
  };
  return WriteToVisible(writer, reader);
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
  // Three of each, alternating; the medians (these machines are noisy).
  std::vector<Percentiles> raws, luns;
  for (int round = 0; round < 3; ++round) {
    raws.push_back(RawToVisible(a, b, raw_at));
    luns.push_back(AppendToVisible(a, b, "lat" + std::to_string(round)));
  }
  const Percentiles raw = Median(raws);
  const Percentiles lun = Median(luns);
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
      "p50 %.1f us p99 %.1f us; ratio p50 %.2f p99 %.2f\n"
      "  (a new channel's first record: visible after %.0f us; a reader "
      "looks for a channel that does not exist yet every 10 ms)\n",
      a.c_str(), b.c_str(), raw_mbs, app_mbs, app_mbs / raw_mbs, raw.p50,
      raw.p99, lun.p50, lun.p99, lun.p50 / raw.p50, lun.p99 / raw.p99,
      lun.first);
  const bool ok = app_mbs >= 0.5 * raw_mbs && lun.p50 <= 2 * raw.p50 &&
                  lun.p99 <= 2 * raw.p99;
  std::printf("LUN targets (throughput >= 0.5 x raw, latency <= 2 x raw): %s\n",
              ok ? "met" : "NOT met");
  return ok;
}

}  // namespace diskwire::storage
