// Two loop devices over one image: the shared LUN of two hosts, each with its
// own page cache. A buffered read through one device keeps returning what its
// cache holds after the other device was written; the LUN backend, O_DIRECT
// throughout, sees every write at once. Needs root and loop devices.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/status_matchers.h"
#include "storage/lun_format.h"
#include "storage/lun_test_util.h"
#include "storage/lun_volume.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

std::string Attach(const std::string& image) {
  std::string cmd = "/sbin/losetup -f --show " + image;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[128] = {};
  const bool got = fgets(buf, sizeof(buf), p) != nullptr;
  pclose(p);
  std::string dev = got ? buf : "";
  while (!dev.empty() && dev.back() == '\n') dev.pop_back();
  return dev;
}

class LunLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "SKIPPED: loop devices need root";
    if (access("/dev/loop-control", F_OK) != 0) {
      GTEST_SKIP() << "SKIPPED: this kernel has no loop devices";
    }
    image_ = dir_.path() + "/lun.img";
    LunFormatRequest r;
    r.slots = 4;
    r.extent_bytes = 128 << 10;
    ASSERT_THAT(MakeLunImage(image_, 64 << 20, r), IsOk());
    a_ = Attach(image_);
    b_ = Attach(image_);
    ASSERT_FALSE(a_.empty());
    ASSERT_FALSE(b_.empty());
  }
  void TearDown() override {
    for (const std::string& d : {a_, b_}) {
      if (!d.empty() && std::system(("/sbin/losetup -d " + d).c_str()) != 0) {
        ADD_FAILURE() << "cannot detach " << d;
      }
    }
  }
  // Through the page cache of `fd`'s device. (The last close of a block
  // device drops its cache: a host's cache lives as long as something holds
  // the device open, as a running engine does.)
  static std::string BufferedRead(int fd, off_t at, size_t n) {
    std::string out(n, '\0');
    const ssize_t got = pread(fd, out.data(), n, at);
    out.resize(got > 0 ? got : 0);
    return out;
  }

  ScratchDir dir_;
  std::string image_, a_, b_;
};

TEST_F(LunLoopTest, EachDeviceHasItsOwnCacheAndTheBackendSeesThrough) {
  ASSERT_OK_AND_ASSIGN(LunGeometry g, ReadLunGeometry(a_));
  // Host b's page cache holds the (still empty) claim of slot 0.
  const int held = open(b_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  const std::string before = BufferedRead(held, g.claim_offset(0), 4096);
  ASSERT_TRUE(before == std::string(4096, '\0'));

  LunVolumeOptions oa;
  oa.node = "a";
  ASSERT_OK_AND_ASSIGN(auto va, OpenLunVolume(a_, oa));
  ASSERT_THAT(va->PublishHeartbeat("proc-a", "alive"), IsOk());
  ASSERT_OK_AND_ASSIGN(auto writer, va->OpenWriter("c", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "through the array")}), IsOk());

  // A buffered read on b still sees its cached zeros: what a naive reader of
  // a shared LUN would act on.
  EXPECT_TRUE(BufferedRead(held, g.claim_offset(0), 4096) == before)
      << "the two loop devices share a cache: the test models nothing";

  LunVolumeOptions ob;
  ob.node = "b";
  ASSERT_OK_AND_ASSIGN(auto vb, OpenLunVolume(b_, ob));
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, vb->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  EXPECT_EQ(l.heartbeats[0].payload, "alive");
  ASSERT_OK_AND_ASSIGN(auto reader, vb->OpenReader("c", 0));
  std::vector<Record> got;
  ASSERT_OK_AND_ASSIGN(size_t n, reader->ReadAvailable(&got, 1 << 20));
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(got[0].payload, "through the array");
  // And later writes too, with b's cache of the extent now warm.
  ASSERT_THAT(writer->Append({DataRecord(17, ", again")}), IsOk());
  got.clear();
  ASSERT_OK_AND_ASSIGN(n, reader->ReadAvailable(&got, 1 << 20));
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(got[0].payload, ", again");
  close(held);
}

}  // namespace
}  // namespace diskwire::storage
