// File: storage/mirror_test_fixture.h
// The fixture of the mirror tests: a source and a target volume in two
// scratch directories behind one FaultInjectingFileOps, a writer on the
// source, and helpers that read a target channel back. Test-only.

#ifndef DISKWIRE_STORAGE_MIRROR_TEST_FIXTURE_H_
#define DISKWIRE_STORAGE_MIRROR_TEST_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/mirror.h"
#include "storage/test_util.h"

namespace diskwire::storage {

class MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DirVolumeOptions o;
    o.node = "source-node";
    o.file_ops = FileOps::Default();
    ASSERT_OK_AND_ASSIGN(source_, OpenDirVolume(from(), o));
    ASSERT_OK_AND_ASSIGN(target_, OpenDirVolume(to(), o));
  }

  std::string from() const { return from_dir_.path(); }
  std::string to() const { return to_dir_.path(); }

  MirrorOptions Options() {
    MirrorOptions o;
    o.file_ops = &faults_;
    o.trim_check_interval = absl::ZeroDuration();
    o.warn = [this](const std::string& line) { warnings_.push_back(line); };
    return o;
  }
  std::unique_ptr<Mirror> NewMirror(MirrorOptions o) {
    absl::StatusOr<std::unique_ptr<Mirror>> m = Mirror::Open(from(), to(), o);
    EXPECT_THAT(m, IsOk());
    return m.ok() ? *std::move(m) : nullptr;
  }
  std::unique_ptr<Mirror> NewMirror() { return NewMirror(Options()); }

  ChannelWriter& SourceWriter(const std::string& channel,
                              WriterOptions o = {}) {
    auto& w = writers_[channel];
    if (w == nullptr) {
      absl::StatusOr<std::unique_ptr<ChannelWriter>> opened =
          source_->OpenWriter(channel, o);
      EXPECT_THAT(opened, IsOk());
      w = *std::move(opened);
    }
    return *w;
  }
  // Appends one batch of DATA records "p<offset>" of `size` bytes each,
  // starting at `*offset` (advanced), with timestamps of now.
  void WriteBatch(const std::string& channel, int records, uint64_t* offset,
                  size_t size = 8) {
    std::vector<Record> batch;
    for (int i = 0; i < records; ++i) {
      std::string payload = absl::StrCat("p", *offset);
      payload.resize(size, '.');
      Record r = DataRecord(*offset, payload);
      r.header.timestamp_ns = 0;  // the writer's clock
      *offset += size;
      batch.push_back(std::move(r));
    }
    ASSERT_THAT(SourceWriter(channel).Append(batch), IsOk());
  }

  // Every record of `channel` on `volume` now, in order.
  static std::vector<Record> All(Volume& volume, const std::string& channel) {
    std::vector<Record> out;
    absl::StatusOr<std::unique_ptr<ChannelReader>> r =
        volume.OpenReader(channel, 0);
    EXPECT_THAT(r, IsOk());
    while (true) {
      absl::StatusOr<size_t> n = (*r)->ReadAvailable(&out, 1 << 20);
      EXPECT_THAT(n, IsOk());
      if (!n.ok() || *n == 0) return out;
    }
  }
  std::vector<Record> Target(const std::string& channel) {
    return All(*target_, channel);
  }
  std::vector<Record> Source(const std::string& channel) {
    return All(*source_, channel);
  }

  ScratchDir from_dir_, to_dir_;
  FaultInjectingFileOps faults_{FileOps::Default()};
  std::unique_ptr<Volume> source_, target_;
  std::map<std::string, std::unique_ptr<ChannelWriter>> writers_;
  std::vector<std::string> warnings_;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_TEST_FIXTURE_H_
