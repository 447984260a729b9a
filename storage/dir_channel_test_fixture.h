// File: storage/dir_channel_test_fixture.h
// The fixture of the directory backend's channel tests: a scratch volume
// behind a FaultInjectingFileOps, and helpers to write, read and corrupt.
// Test-only; included once per test binary.

#ifndef DISKWIRE_STORAGE_DIR_CHANNEL_TEST_FIXTURE_H_
#define DISKWIRE_STORAGE_DIR_CHANNEL_TEST_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_layout.h"
#include "storage/dir_volume.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/test_util.h"

namespace diskwire::storage {

class DirChannelTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(""); }

  void Reopen(std::string key) {
    DirVolumeOptions o;
    o.node = "test-node";
    o.mac_key = std::move(key);
    o.file_ops = &faults_;
    ASSERT_OK_AND_ASSIGN(volume_, OpenDirVolume(dir_.path(), o));
  }
  std::unique_ptr<ChannelWriter> Writer(WriterOptions o = {}) {
    absl::StatusOr<std::unique_ptr<ChannelWriter>> w =
        volume_->OpenWriter("ch", o);
    EXPECT_THAT(w, IsOk());
    return w.ok() ? *std::move(w) : nullptr;
  }
  std::unique_ptr<ChannelReader> Reader(uint64_t from = 0) {
    return *volume_->OpenReader("ch", from);
  }
  // Payloads of everything the reader has now, joined by '|'.
  std::string ReadAll(ChannelReader& r) {
    std::vector<Record> out;
    absl::StatusOr<size_t> n = r.ReadAvailable(&out, 1 << 20);
    if (!n.ok()) return "error: " + n.status().ToString();
    std::string s;
    for (const Record& rec : out) s += (s.empty() ? "" : "|") + rec.payload;
    return s;
  }
  std::string SegPath(uint64_t index) {
    return dir_.path() + "/channels/ch/" + SegmentFileName(index);
  }

  ScratchDir dir_;
  FaultInjectingFileOps faults_{FileOps::Default()};
  std::unique_ptr<Volume> volume_;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_CHANNEL_TEST_FIXTURE_H_
