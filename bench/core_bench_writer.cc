// bench/core_bench_writer: the storage path's write side. One session
// submits a 64-byte message, waits until the writer thread has appended it to
// a real directory-volume channel, and repeats; prints p50/p99 of submit ->
// appended for several flush delays, beside the raw cost of the same Append
// called directly (the baseline: what the writer adds is the queueing, the
// thread hop and the flush delay). Then bulk: 64 MiB in 64 KiB submissions,
// MiB/s through the writer vs direct Appends of 64 KiB records.
// Usage: core_bench_writer [volume dir, default $TMPDIR or /tmp]

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "core/clock.h"
#include "core/writer.h"
#include "storage/dir_volume.h"

namespace diskwire {
namespace {

using storage::Record;

constexpr int kMessages = 3000;

std::unique_ptr<storage::ChannelWriter> OpenChannel(storage::Volume* v,
                                                    const std::string& name) {
  auto w = v->OpenWriter(name, {});
  if (!w.ok()) {
    fprintf(stderr, "%s\n", w.status().ToString().c_str());
    exit(1);
  }
  return *std::move(w);
}

void Report(const char* what, std::vector<int64_t> ns) {
  std::sort(ns.begin(), ns.end());
  printf("%-40s p50 %7.1f us  p99 %7.1f us\n", what, ns[ns.size() / 2] / 1e3,
         ns[ns.size() * 99 / 100] / 1e3);
}

void DirectAppend(storage::Volume* v) {
  auto channel = OpenChannel(v, "direct");
  std::vector<int64_t> lat;
  Record r;
  r.header.type = storage::RecordType::kData;
  r.payload.assign(64, 'd');
  RealClock* clock = RealClock::Get();
  for (int i = 0; i < kMessages; ++i) {
    r.header.stream_offset = i * 64;
    int64_t t0 = clock->NowNs();
    if (!channel->Append({&r, 1}).ok()) exit(1);
    lat.push_back(clock->NowNs() - t0);
  }
  Report("direct Append (baseline)", lat);
}

void ThroughWriter(storage::Volume* v, int64_t flush_delay_ns) {
  const std::string name = "w" + std::to_string(flush_delay_ns);
  auto channel = OpenChannel(v, name);
  WriterOptions o;
  o.flush_delay_ns = flush_delay_ns;
  Writer writer(RealClock::Get(), o);
  auto out = writer.AddChannel({1, 2}, storage::kClientToServer, channel.get());
  writer.Start();
  std::vector<int64_t> lat;
  const std::string msg(64, 'm');
  RealClock* clock = RealClock::Get();
  for (int i = 0; i < kMessages; ++i) {
    int64_t t0 = clock->NowNs();
    if (!out->SubmitData(i * 64, msg).ok()) exit(1);
    if (!out->AwaitIdle(absl::Seconds(5)).ok()) exit(1);
    lat.push_back(clock->NowNs() - t0);
  }
  writer.RemoveChannel(out);
  char what[64];
  snprintf(what, sizeof(what), "writer, flush delay %3lld us",
           static_cast<long long>(flush_delay_ns / kNsPerUs));
  Report(what, lat);
}

void Bulk(storage::Volume* v) {
  constexpr size_t kTotal = 64 << 20, kChunk = 64 << 10;
  const std::string chunk(kChunk, 'b');
  RealClock* clock = RealClock::Get();
  double direct_mib_s, writer_mib_s;
  {
    auto channel = OpenChannel(v, "bulk-direct");
    Record r;
    r.header.type = storage::RecordType::kData;
    r.payload = chunk;
    int64_t t0 = clock->NowNs();
    for (size_t at = 0; at < kTotal; at += kChunk) {
      r.header.stream_offset = at;
      if (!channel->Append({&r, 1}).ok()) exit(1);
    }
    direct_mib_s = (kTotal >> 20) / ((clock->NowNs() - t0) / 1e9);
  }
  {
    auto channel = OpenChannel(v, "bulk-writer");
    Writer writer(RealClock::Get(), WriterOptions());
    auto out =
        writer.AddChannel({1, 2}, storage::kClientToServer, channel.get());
    writer.Start();
    int64_t t0 = clock->NowNs();
    for (size_t at = 0; at < kTotal; at += kChunk) {
      if (!out->SubmitData(at, chunk).ok()) exit(1);
    }
    if (!out->AwaitIdle(absl::Seconds(60)).ok()) exit(1);
    writer_mib_s = (kTotal >> 20) / ((clock->NowNs() - t0) / 1e9);
    writer.RemoveChannel(out);
  }
  printf("bulk 64 KiB: direct %.0f MiB/s, writer %.0f MiB/s, ratio %.3f\n",
         direct_mib_s, writer_mib_s, writer_mib_s / direct_mib_s);
}

}  // namespace
}  // namespace diskwire

int main(int argc, char** argv) {
  const char* tmp = getenv("TMPDIR");
  std::string base = argc > 1 ? argv[1] : (tmp ? tmp : "/tmp");
  std::string root = base + "/dw-writer-bench-XXXXXX";
  if (mkdtemp(root.data()) == nullptr) {
    perror("mkdtemp");
    return 1;
  }
  {
    auto volume = diskwire::storage::OpenDirVolume(root, {});
    if (!volume.ok()) {
      fprintf(stderr, "%s\n", volume.status().ToString().c_str());
      return 1;
    }
    printf("volume %s, %d messages of 64 B, one outstanding\n", root.c_str(),
           diskwire::kMessages);
    diskwire::DirectAppend(volume->get());
    for (int64_t us : {0, 50, 200}) {
      diskwire::ThroughWriter(volume->get(), us * diskwire::kNsPerUs);
    }
    diskwire::Bulk(volume->get());
  }
  std::filesystem::remove_all(root);
  return 0;
}
