// A writer process and a reader process on one channel: random batch and
// record sizes, rotations, control records between DATA; the reader, woken
// by its VolumeWatcher, must rebuild exactly the byte stream written.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

constexpr uint64_t kStreamBytes = 3 << 20;

// The stream's byte at `offset`: position-dependent, so any loss,
// duplication or reordering shows.
char StreamByte(uint64_t offset) {
  return static_cast<char>((offset * 2654435761u) >> 13);
}

void RunWriter(const std::string& root, uint32_t seed) {
  auto volume = OpenDirVolume(root, {});
  if (!volume.ok()) _exit(10);
  WriterOptions o;
  o.segment_bytes = 256 << 10;
  auto writer = (*volume)->OpenWriter("stream", o);
  if (!writer.ok()) _exit(11);
  std::mt19937 rng(seed);
  uint64_t offset = 0;
  std::vector<Record> batch;
  while (offset < kStreamBytes) {
    batch.clear();
    const int n = 1 + rng() % 20;
    for (int i = 0; i < n && offset < kStreamBytes; ++i) {
      if (rng() % 5 == 0) {
        batch.push_back(DataRecord(offset, "", RecordType::kAck));
        continue;
      }
      const uint64_t len =
          std::min<uint64_t>(1 + rng() % 9000, kStreamBytes - offset);
      std::string payload(len, '\0');
      for (uint64_t k = 0; k < len; ++k) payload[k] = StreamByte(offset + k);
      batch.push_back(DataRecord(offset, std::move(payload)));
      offset += len;
    }
    if (!(*writer)->Append(batch).ok()) _exit(12);
  }
  _exit(0);
}

TEST(DirChannelProcessTest,
     ReaderRebuildsTheExactStreamWrittenByAnotherProcess) {
  ScratchDir dir;
  ASSERT_OK_AND_ASSIGN(auto volume, OpenDirVolume(dir.path(), {}));
  WatcherOptions wo;
  wo.mode = WatcherOptions::Mode::kInotify;
  ASSERT_OK_AND_ASSIGN(auto watcher, volume->NewWatcher(wo));
  ASSERT_THAT(watcher->Watch("stream"), IsOk());
  ASSERT_OK_AND_ASSIGN(auto reader, volume->OpenReader("stream", 0));
  const pid_t child = fork();
  if (child == 0) RunWriter(dir.path(), 1234);

  uint64_t next = 0;  // the next stream byte expected
  std::vector<Record> out;
  VolumeWatcher::Changes changes;
  while (next < kStreamBytes) {
    pollfd p = {watcher->fd(), POLLIN, 0};
    ASSERT_GT(poll(&p, 1, 10'000), 0) << "no change event at offset " << next;
    ASSERT_THAT(watcher->Drain(&changes), IsOk());
    for (;;) {
      out.clear();
      ASSERT_OK_AND_ASSIGN(size_t n, reader->ReadAvailable(&out, 64 << 10));
      if (n == 0) break;
      for (const Record& r : out) {
        if (r.header.type != RecordType::kData) {
          EXPECT_EQ(r.header.stream_offset, next);
          continue;
        }
        ASSERT_EQ(r.header.stream_offset, next);
        for (size_t k = 0; k < r.payload.size(); ++k) {
          ASSERT_EQ(r.payload[k], StreamByte(next + k)) << next + k;
        }
        next += r.payload.size();
      }
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(next, kStreamBytes);
}

}  // namespace
}  // namespace diskwire::storage
