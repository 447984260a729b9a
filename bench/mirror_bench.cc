// mirror_bench: `diskwire mirror` against a plain copy, side by side in one
// run (DESIGN.md §6).
//
//   bazel run //bench:mirror_bench -- [--from=/var/tmp] [--to=/dev/shm]
//                                     [--mib=N]
//
//  - throughput: N MiB of 16 KiB records (batches of 16) in a source volume
//    under --from, copied to a fresh volume under --to by Mirror::CopyAll(),
//    against a plain sequential copy (read + write, 1 MiB chunks) of the same
//    segment files between the same two directories; alternating order, best
//    of 3; ratio = mirror / plain throughput;
//  - latency: a writer thread appends one 64-byte record every 200 us to the
//    source, a mirror runs continuously (Mirror::Run), a reader woken by the
//    target's VolumeWatcher takes each record; latency = the reader's
//    CLOCK_REALTIME − the record's timestamp (source write → target read),
//    p50/p99/max.
// Durability off (page cache), as storage_bench's "off" lines.

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "bench/bench_util.h"
#include "storage/dir_volume.h"
#include "storage/mirror.h"

namespace diskwire::storage {
namespace {

constexpr size_t kRecordPayload = 16 << 10;
constexpr size_t kRecordsPerBatch = 16;
constexpr int kLatencySamples = 3000;

using bench::Die;
using bench::Now;
using bench::RealtimeNs;

template <typename T>
T Check(absl::StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what, v.status());
  return *std::move(v);
}

std::string Fresh(const std::string& base, const std::string& name) {
  std::string dir =
      base + "/mirror_bench-" + std::to_string(getpid()) + "-" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

// Fills a volume at `dir` with `mib` MiB in channel "c".
void Fill(const std::string& dir, size_t mib) {
  auto volume = Check(OpenDirVolume(dir, {}), "open source");
  auto writer = Check(volume->OpenWriter("c", {}), "open writer");
  std::vector<Record> batch(kRecordsPerBatch);
  uint64_t offset = 0;
  const size_t batches = (mib << 20) / (kRecordPayload * kRecordsPerBatch);
  for (size_t b = 0; b < batches; ++b) {
    for (Record& r : batch) {
      r.header.stream_offset = offset;
      r.payload.assign(kRecordPayload, static_cast<char>('a' + b % 26));
      offset += kRecordPayload;
    }
    absl::Status s = writer->Append(batch);
    if (!s.ok()) Die("append", s);
  }
}

// Plain sequential copy of the source's segment files into `to`.
double PlainCopy(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  std::vector<char> buf(1 << 20);
  const double start = Now();
  for (const auto& entry :
       std::filesystem::directory_iterator(from + "/channels/c")) {
    if (entry.path().extension() != ".seg") continue;
    const int in = open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    const int out = open((to + "/" + entry.path().filename().string()).c_str(),
                         O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (in < 0 || out < 0)
      Die("plain copy open", absl::ErrnoToStatus(errno, ""));
    ssize_t n;
    while ((n = read(in, buf.data(), buf.size())) > 0) {
      if (write(out, buf.data(), n) != n) {
        Die("plain copy write", absl::ErrnoToStatus(errno, ""));
      }
    }
    close(in);
    close(out);
  }
  return Now() - start;
}

double MirrorCopy(const std::string& from, const std::string& to) {
  auto mirror = Check(Mirror::Open(from, to, MirrorOptions{}), "mirror open");
  const double start = Now();
  PassResult r = Check(mirror->CopyAll(), "mirror copy");
  const double seconds = Now() - start;
  if (r.records == 0) Die("mirror copy", absl::InternalError("copied nothing"));
  return seconds;
}

void Throughput(const std::string& from_base, const std::string& to_base,
                size_t mib) {
  const std::string src = Fresh(from_base, "src");
  Fill(src, mib);
  double best_plain = 1e9, best_mirror = 1e9;
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 2; ++k) {
      const bool plain_first = round % 2 == 0;
      const bool plain = (k == 0) == plain_first;
      const std::string dst = Fresh(to_base, plain ? "plain" : "mirror");
      const double s = plain ? PlainCopy(src, dst) : MirrorCopy(src, dst);
      (plain ? best_plain : best_mirror) =
          std::min(plain ? best_plain : best_mirror, s);
      std::filesystem::remove_all(dst);
    }
  }
  std::filesystem::remove_all(src);
  const double plain_rate = mib / best_plain, mirror_rate = mib / best_mirror;
  std::printf(
      "throughput %s -> %s, %zu MiB: plain copy %.0f MiB/s, mirror %.0f "
      "MiB/s, ratio %.2f\n",
      from_base.c_str(), to_base.c_str(), mib, plain_rate, mirror_rate,
      mirror_rate / plain_rate);
}

void Latency(const std::string& from_base, const std::string& to_base) {
  const std::string src = Fresh(from_base, "lat-src");
  const std::string dst = Fresh(to_base, "lat-dst");
  auto source = Check(OpenDirVolume(src, {}), "open source");
  auto target = Check(OpenDirVolume(dst, {}), "open target");
  auto writer = Check(source->OpenWriter("c", {}), "open writer");
  auto mirror = Check(Mirror::Open(src, dst, MirrorOptions{}), "mirror open");
  std::thread run([&] {
    absl::Status s = mirror->Run(absl::Milliseconds(5));
    if (!s.ok()) Die("mirror run", s);
  });
  auto watcher = Check(target->NewWatcher({}), "watcher");
  if (absl::Status s = watcher->Watch("c"); !s.ok()) Die("watch", s);
  auto reader = Check(target->OpenReader("c", 0), "reader");
  std::thread write([&] {
    for (int i = 0; i < kLatencySamples; ++i) {
      Record r;
      r.header.stream_offset = static_cast<uint64_t>(i) * 64;
      r.payload.assign(64, 'x');
      if (absl::Status s = writer->Append({r}); !s.ok()) Die("append", s);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<int64_t> lat;
  std::vector<Record> got;
  const double deadline = Now() + 60;
  while (lat.size() < static_cast<size_t>(kLatencySamples) &&
         Now() < deadline) {
    got.clear();
    const size_t n = Check(reader->ReadAvailable(&got, 1 << 20), "read");
    const uint64_t now = RealtimeNs();
    for (const Record& r : got) {
      lat.push_back(static_cast<int64_t>(now - r.header.timestamp_ns));
    }
    if (n == 0) {
      pollfd p{watcher->fd(), POLLIN, 0};
      poll(&p, 1, 10);
      VolumeWatcher::Changes changes;
      watcher->Drain(&changes).IgnoreError();
    }
  }
  write.join();
  mirror->Stop();
  run.join();
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(dst);
  if (lat.empty()) Die("latency", absl::InternalError("no record arrived"));
  std::sort(lat.begin(), lat.end());
  auto at = [&](double q) {
    return lat[static_cast<size_t>(q * (lat.size() - 1))];
  };
  std::printf(
      "latency source write -> mirror -> target read, 64-byte records every "
      "200 us, %zu samples: p50 %.0f us, p99 %.0f us, max %.0f us\n",
      lat.size(), at(0.5) / 1e3, at(0.99) / 1e3, lat.back() / 1e3);
}

int Main(int argc, char** argv) {
  std::string from = "/var/tmp", to = "/dev/shm";
  size_t mib = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--from=", 0) == 0) {
      from = a.substr(7);
    } else if (a.rfind("--to=", 0) == 0) {
      to = a.substr(5);
    } else if (a.rfind("--mib=", 0) == 0 &&
               absl::SimpleAtoi(a.substr(6), &mib) && mib > 0) {
    } else {
      std::fprintf(stderr,
                   "usage: mirror_bench [--from=DIR] [--to=DIR] [--mib=N]\n");
      return 2;
    }
  }
  Throughput(from, to, mib);
  Latency(from, to);
  return 0;
}

}  // namespace
}  // namespace diskwire::storage

int main(int argc, char** argv) { return diskwire::storage::Main(argc, argv); }
