// diskwire check: the judgements on made-up inputs (mountinfo lines, free
// space, latency results), RunCheck on a real scratch volume and with
// injected write failures, and the binary's exit status.

#include "cli/check_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/fault_injecting_file_ops.h"
#include "storage/lun_format.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

using storage::ScratchDir;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr uint64_t kExt4 = 0xEF53, kFuse = 0x65735546, kNfs = 0x6969;
constexpr uint64_t kMiB = uint64_t{1} << 20, kGiB = uint64_t{1} << 30;

std::vector<std::string> Lines(const std::vector<Finding>& findings) {
  std::vector<std::string> out;
  for (const Finding& f : findings) out.push_back(FormatFinding(f));
  return out;
}

const char kMountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "40 22 0:35 / /mnt/gluster rw,relatime shared:20 - fuse.glusterfs "
    "st:/vol rw,user_id=0,group_id=0,allow_other\n"
    "41 22 0:36 / /mnt/nfs rw,relatime shared:21 - nfs4 h:/x "
    "rw,vers=4.2,acregmin=3,acregmax=60,acdirmin=30,acdirmax=60\n"
    "42 22 0:37 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
    "garbage line\n";

TEST(FindMountTest, LongestPrefixWins) {
  ASSERT_OK_AND_ASSIGN(MountInfo m, FindMount("/mnt/gluster/dw", kMountinfo));
  EXPECT_EQ(m.mount_point, "/mnt/gluster");
  EXPECT_EQ(m.fstype, "fuse.glusterfs");
  EXPECT_THAT(m.options, HasSubstr("allow_other"));
  EXPECT_EQ(FindMount("/mnt/glusterfs2", kMountinfo)->mount_point, "/");
  EXPECT_EQ(FindMount("/mnt/nfs", kMountinfo)->fstype, "nfs4");
  EXPECT_EQ(FindMount("/mnt/with space/v", kMountinfo)->fstype, "tmpfs");
  EXPECT_THAT(FindMount("/x", "no mounts\n"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/x")));
}

TEST(FilesystemFindingsTest, LocalIsOneOkLine) {
  EXPECT_THAT(Lines(FilesystemFindings(kExt4, {"/", "ext4", "rw"})),
              ElementsAre("ok: filesystem: ext2/3/4, ext4 mounted at /: "
                          "local, inotify reports every append"));
  EXPECT_EQ(FilesystemTypeName(0x1234), "unknown (statfs f_type 0x1234)");
}

TEST(FilesystemFindingsTest, GlusterNamesTheOptionsThatCutTheCache) {
  MountInfo m = *FindMount("/mnt/gluster/dw", kMountinfo);
  std::vector<std::string> lines = Lines(FilesystemFindings(kFuse, m));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("warn: filesystem: FUSE, fuse.glusterfs "
                                  "mounted at /mnt/gluster: network/FUSE"));
  EXPECT_THAT(lines[1],
              AllOf(HasSubstr("warn: FUSE:"),
                    HasSubstr("-o attribute-timeout=0,entry-timeout=0"),
                    HasSubstr("performance.stat-prefetch off")));
  m.options += ",attribute-timeout=0,entry-timeout=0";
  EXPECT_THAT(Lines(FilesystemFindings(kFuse, m))[1],
              HasSubstr("ok: FUSE attribute cache off"));
}

TEST(FilesystemFindingsTest, NfsNamesActimeo) {
  MountInfo m = *FindMount("/mnt/nfs/dw", kMountinfo);
  EXPECT_THAT(Lines(FilesystemFindings(kNfs, m))[1],
              HasSubstr("warn: NFS: attribute cache on, another host's "
                        "appends may be seen seconds late: mount with -o "
                        "actimeo=0"));
  m.options = "rw,acregmin=0,acregmax=0,acdirmin=0,acdirmax=0";
  EXPECT_THAT(Lines(FilesystemFindings(kNfs, m))[1],
              HasSubstr("ok: NFS attribute cache off"));
}

TEST(FreeSpaceTest, Thresholds) {
  EXPECT_EQ(FormatFinding(FreeSpaceFinding(63 * kMiB, 100 * kGiB, 5000, 9000)),
            "FAIL: free space: 63.0 MiB of 100.0 GiB, 5000 inodes: less than "
            "one 64 MiB segment");
  EXPECT_THAT(FormatFinding(FreeSpaceFinding(512 * kMiB, kGiB, 5000, 9000)),
              HasSubstr("warn: free space: 512.0 MiB of 1.0 GiB"));
  EXPECT_THAT(FormatFinding(FreeSpaceFinding(10 * kGiB, 20 * kGiB, 999, 9000)),
              HasSubstr("warn: free space: 10.0 GiB of 20.0 GiB, 999 inodes: "
                        "few inodes left"));
  // Filesystems that do not count inodes report 0 of 0.
  EXPECT_EQ(FormatFinding(FreeSpaceFinding(10 * kGiB, 20 * kGiB, 0, 0)),
            "ok: free space: 10.0 GiB of 20.0 GiB");
}

LatencyResult Measured(int n, int64_t step_us) {
  LatencyResult r;
  r.appended = n;
  for (int i = 1; i <= n; ++i) r.latency_us.push_back(i * step_us);
  r.fd_wakeups = n;
  return r;
}

TEST(LatencyFindingsTest, PercentilesAndSupportedSettings) {
  // 1..100 ms: p50 50 ms, p99 99 ms.
  std::vector<std::string> lines =
      Lines(LatencyFindings(Measured(100, 1000), false, false, 1000, 5, 1000));
  EXPECT_THAT(lines, Contains("ok: change notification: the watcher fd fired "
                              "for 100 reads"));
  EXPECT_THAT(lines, Contains("ok: append->read latency over 100 appends: "
                              "p50 50.00 ms, p99 99.00 ms, max 100.00 ms"));
  EXPECT_THAT(lines, Contains(HasSubstr(
                         "ok: DISKWIRE_MAX_LAG_MS: this volume supports 495 "
                         "ms or more")));
  EXPECT_THAT(lines, Contains(HasSubstr("warn: DISKWIRE_DETECT_MS: failover "
                                        "takes about DETECT_MS + 99.00 ms")));
  EXPECT_THAT(lines, Contains(HasSubstr("PEER_TIMEOUT_MS: at least 2099 ms")));
  // A bound below 5 x p99 raises alarms.
  EXPECT_THAT(
      Lines(LatencyFindings(Measured(100, 1000), false, false, 400, 5, 1000)),
      Contains(AllOf(HasSubstr("warn: DISKWIRE_MAX_LAG_MS"),
                     HasSubstr("set to 400: lag alarms will fire"))));
}

TEST(LatencyFindingsTest, PollingOnlyAndNetworkAdvice) {
  LatencyResult r = Measured(10, 100);
  r.fd_wakeups = 0;
  r.poll_wakeups = 10;
  r.poll_interval = absl::Milliseconds(5);
  std::vector<std::string> lines =
      Lines(LatencyFindings(r, true, false, 1000, 5, 1000));
  EXPECT_THAT(lines, Contains("warn: change notification: the watcher fd "
                              "never fired; appends were found by polling "
                              "every 5ms"));
  EXPECT_THAT(lines, Contains(HasSubstr("warn: measured through this host's "
                                        "mount only")));
  EXPECT_THAT(Lines(LatencyFindings(r, true, true, 1000, 5, 1000)),
              Not(Contains(HasSubstr("this host's mount only"))));
  EXPECT_THAT(Lines(LatencyFindings(r, true, true, 20, 5, 1000)),
              Contains(HasSubstr("warn: DISKWIRE_POLL_MS 5 is over a fifth")));
}

TEST(LatencyFindingsTest, UnseenAppendsFail) {
  LatencyResult none;
  none.appended = 1;
  none.error = "append 1 not read within 2s";
  EXPECT_THAT(Lines(LatencyFindings(none, true, false, 1000, 5, 1000)),
              ElementsAre("FAIL: append->read: 0 of 1 appends read: append 1 "
                          "not read within 2s"));
  LatencyResult some = Measured(3, 100);
  some.appended = 4;
  some.error = "append 4 not read within 2s";
  std::vector<std::string> lines =
      Lines(LatencyFindings(some, false, false, 1000, 5, 1000));
  EXPECT_THAT(lines, Contains("FAIL: append->read: 3 of 4 appends read: "
                              "append 4 not read within 2s"));
  EXPECT_THAT(lines, Contains(HasSubstr("latency over 3 appends")));
}

class RunCheckTest : public ::testing::Test {
 protected:
  CheckOptions Options() {
    CheckOptions o;
    o.volume = dir_.path();
    o.samples = 20;
    return o;
  }
  std::vector<std::string> Channels() {
    auto v = storage::OpenDirVolume(dir_.path(), {});
    return v.ok() ? (*v)->ListChannels().value_or(std::vector<std::string>{})
                  : std::vector<std::string>{"(cannot open)"};
  }
  ScratchDir dir_;
};

TEST_F(RunCheckTest, LocalVolumeServesAndIsLeftClean) {
  std::vector<std::string> lines = Lines(RunCheck(Options()));
  EXPECT_THAT(lines, Not(Contains(HasSubstr("FAIL"))))
      << absl::StrJoin(lines, "\n");
  EXPECT_THAT(lines, Contains("ok: writable: probe channel created, appended "
                              "to and removed"));
  EXPECT_THAT(lines, Contains(HasSubstr("ok: change notification: the watcher "
                                        "fd fired")));
  EXPECT_THAT(lines,
              Contains(HasSubstr("ok: append->read latency over 20 appends")));
  EXPECT_THAT(lines, Contains(HasSubstr("ok: free space: ")));
  EXPECT_THAT(Channels(), IsEmpty());
}

TEST_F(RunCheckTest, FullVolumeFails) {
  storage::FaultInjectingFileOps faults(storage::FileOps::Default());
  CheckOptions o = Options();
  o.file_ops = &faults;
  faults.FailNext(storage::FileOp::kWrite, ENOSPC, 1, "/channels/");
  std::vector<std::string> lines = Lines(RunCheck(o));
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), HasSubstr("FAIL: not writable: ")) << lines.back();
  EXPECT_THAT(Channels(), IsEmpty());
}

TEST_F(RunCheckTest, MissingDirectoryFails) {
  CheckOptions o = Options();
  o.volume += "/missing";
  EXPECT_THAT(
      Lines(RunCheck(o)),
      ElementsAre(HasSubstr("FAIL: " + o.volume + " is not a directory")));
}

TEST_F(RunCheckTest, ALunReportsItsSlotsSpaceAndLatency) {
  const std::string image = dir_.path() + "/lun.img";
  { std::ofstream f(image); }
  ASSERT_EQ(truncate(image.c_str(), 64 << 20), 0);
  storage::LunFormatRequest r;
  r.slots = 8;
  ASSERT_TRUE(storage::FormatLun(image, r, false).ok());
  CheckOptions o = Options();
  o.volume = image;
  std::vector<std::string> lines = Lines(RunCheck(o));
  EXPECT_THAT(lines, Not(Contains(HasSubstr("FAIL"))))
      << absl::StrJoin(lines, "\n");
  EXPECT_THAT(lines, Contains(HasSubstr("ok: LUN volume: 67108864 bytes, "
                                        "logical block ")));
  EXPECT_THAT(lines, Contains("ok: slots: 0 live, 0 released or expired, 8 "
                              "free of 8"));
  EXPECT_THAT(lines, Contains(HasSubstr("ok: channel space: ")));
  EXPECT_THAT(lines,
              Contains(HasSubstr("ok: append->read latency over 20 appends")));
  // A file that is no volume at all.
  o.volume = dir_.path() + "/blank.img";
  { std::ofstream f(o.volume); }
  ASSERT_EQ(truncate(o.volume.c_str(), 1 << 20), 0);
  EXPECT_THAT(Lines(RunCheck(o)), ElementsAre(HasSubstr("is not a directory")));
}

int RunBinary(const std::string& args, std::string* out) {
  char cwd[4096];  // the runfiles tree
  EXPECT_NE(getcwd(cwd, sizeof cwd), nullptr);
  FILE* p =
      popen(absl::StrCat("env -i ", cwd, "/cli/diskwire check ", args, " 2>&1")
                .c_str(),
            "r");
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  return WEXITSTATUS(pclose(p));
}

TEST_F(RunCheckTest, BinaryExitStatus) {
  std::string out;
  EXPECT_EQ(
      RunBinary(absl::StrCat("--volume ", dir_.path(), " --samples 5"), &out),
      0)
      << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("ok: ", dir_.path(),
                                          " can serve (0 warnings)\n")));
  EXPECT_EQ(RunBinary(absl::StrCat("--volume ", dir_.path(), "/missing"), &out),
            1);
  EXPECT_THAT(out, HasSubstr("cannot serve (1 failed)"));
  EXPECT_EQ(RunBinary("--volume /x --samples 0", &out), 2);
  EXPECT_THAT(out, HasSubstr("--samples: \"0\" is not a count"));
  EXPECT_EQ(RunBinary("", &out), 2);
  EXPECT_THAT(out, HasSubstr("no volume"));
}

}  // namespace
}  // namespace diskwire
