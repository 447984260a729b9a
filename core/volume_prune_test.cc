#include "core/volume_prune.h"

#include <sys/time.h>
#include <time.h>

#include <filesystem>

#include "base/status_matchers.h"
#include "core/session_report.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

namespace fs = std::filesystem;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Sets the modification time of a channel and its files a minute back.
void Age(const fs::path& dir) {
  const timeval old[2] = {{time(nullptr) - 60, 0}, {time(nullptr) - 60, 0}};
  for (const auto& entry : fs::directory_iterator(dir))
    utimes(entry.path().c_str(), old);
  utimes(dir.c_str(), old);
}

class VolumePruneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(volume_, storage::OpenDirVolume(dir_.path(), {}));
  }
  void Channel(const std::string& name) {
    ASSERT_OK_AND_ASSIGN(auto writer, volume_->OpenWriter(name, {}));
    storage::Record r;
    r.payload = "datagram";
    ASSERT_THAT(writer->Append({r}), IsOk());
    writer.reset();  // closed: nothing but the heartbeats protects it
    Age(fs::path(dir_.path()) / "channels" / name);
  }
  bool Exists(const std::string& name) {
    return fs::exists(fs::path(dir_.path()) / "channels" / name);
  }

  storage::ScratchDir dir_;
  std::unique_ptr<storage::Volume> volume_;
};

// A UDP relay's channels sit idle between cuts for as long as the network
// works; they are its while its process lives, however old they look.
TEST_F(VolumePruneTest, KeepsTheUdpChannelsOfLiveRelays) {
  ProcessReport live;
  live.udp.tag = "00112233445566aa";
  ASSERT_THAT(volume_->PublishHeartbeat("a.1.1", EncodeProcessReport(live)),
              IsOk());
  Channel("u-00112233445566aa-ffeeddccbbaa9988");  // it sends
  Channel("u-ffeeddccbbaa9988-00112233445566aa");  // it receives
  Channel("u-0000000000000001-0000000000000002");  // nobody's
  ASSERT_OK_AND_ASSIGN(storage::PruneReport report,
                       PruneVolume(dir_.path(), *volume_, NowNs(), 5000));
  EXPECT_TRUE(Exists("u-00112233445566aa-ffeeddccbbaa9988"));
  EXPECT_TRUE(Exists("u-ffeeddccbbaa9988-00112233445566aa"));
  EXPECT_FALSE(Exists("u-0000000000000001-0000000000000002"));
}

}  // namespace
}  // namespace diskwire
