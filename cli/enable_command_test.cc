// `diskwire enable` and `disable` against real unit files under a --root.

#include "cli/enable_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class EnableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp ? tmp : "/tmp", "/enable_test_", getpid());
    fs::remove_all(dir_);
    root_ = dir_ + "/root";
    volume_ = dir_ + "/vol%1";  // a specifier systemd must not expand
    shim_ = dir_ + "/libdiskwire.so";
    fs::create_directories(root_ + "/etc/systemd/system");
    fs::create_directories(root_ + "/lib/systemd/system");
    fs::create_directories(volume_);
    std::ofstream(shim_) << "stand-in";
    // A vendor unit that preloads a library of its own, as jemalloc users do.
    std::ofstream(root_ + "/lib/systemd/system/demo.service")
        << "[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/true\n"
           "Environment=\"LD_PRELOAD=/usr/lib/libjemalloc.so.2\" A=1\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::StatusOr<UnitPlan> Enable(std::vector<std::string> args) {
    args.insert(args.end(), {"--root", root_, "--shim", shim_});
    return PlanEnable(args, dir_, "");
  }
  std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string DropIn(const std::string& unit) {
    return root_ + "/etc/systemd/system/" + unit + ".d/diskwire.conf";
  }

  std::string dir_, root_, volume_, shim_;
};

TEST_F(EnableTest, DropInKeepsTheUnitsPreloadAndSystemdAcceptsIt) {
  ASSERT_OK_AND_ASSIGN(
      UnitPlan plan, Enable({"demo", "--volume", volume_, "--select", "5405"}));
  EXPECT_EQ(plan.unit, "demo.service");
  EXPECT_EQ(plan.dropin, DropIn("demo.service"));
  ASSERT_THAT(WriteDropIn(plan), IsOk());
  const std::string text = Read(plan.dropin);
  EXPECT_THAT(text, HasSubstr(absl::StrCat(
                        "[Service]\nEnvironment=\"DISKWIRE_VOLUME=", dir_,
                        "/vol%%1\"\nEnvironment=\"DISKWIRE_SELECT=5405\"\n")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat(
                        "Environment=\"LD_PRELOAD=/usr/lib/libjemalloc.so.2:",
                        shim_, "\"\n")));
  if (system("command -v systemd-analyze >/dev/null") != 0) {
    GTEST_SKIP() << "SKIPPED: systemd-analyze is not installed (apt-get "
                    "install systemd)";
  }
  // The unit with its drop-in, as systemd itself parses them: no complaint.
  fs::create_directories(root_ + "/lib/systemd/system/demo.service.d");
  fs::copy_file(plan.dropin,
                root_ + "/lib/systemd/system/demo.service.d/diskwire.conf");
  const std::string log = dir_ + "/verify.log";
  const int rc =
      system(absl::StrCat("systemd-analyze verify ", root_,
                          "/lib/systemd/system/demo.service >", log, " 2>&1")
                 .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 0) << Read(log);
  EXPECT_THAT(Read(log), Not(HasSubstr("diskwire.conf"))) << Read(log);
}

TEST_F(EnableTest, FlagsOnEitherSideOfTheUnitAndASecondEnableUpdates) {
  ASSERT_OK_AND_ASSIGN(UnitPlan first,
                       Enable({"--select", "5405", "corosync", "--volume",
                               volume_, "--detect-ms=500"}));
  EXPECT_EQ(first.unit, "corosync.service");
  ASSERT_THAT(WriteDropIn(first), IsOk());
  EXPECT_THAT(Read(first.dropin), HasSubstr("DISKWIRE_DETECT_MS=500"));
  ASSERT_OK_AND_ASSIGN(UnitPlan second, Enable({"corosync.service", "--volume",
                                                volume_, "--select", "7000"}));
  ASSERT_THAT(WriteDropIn(second), IsOk());
  const std::string text = Read(second.dropin);
  EXPECT_THAT(text, HasSubstr("DISKWIRE_SELECT=7000"));
  EXPECT_THAT(text, Not(HasSubstr("5405")));
  EXPECT_THAT(text, Not(HasSubstr("DETECT_MS")));
  // No unit file: nothing to keep, and a warning says so.
  EXPECT_THAT(
      second.warnings,
      testing::Contains(HasSubstr("no unit file for corosync.service")));
  size_t files = 0;
  for (const auto& e :
       fs::directory_iterator(fs::path(second.dropin).parent_path())) {
    files += e.is_regular_file() ? 1 : 0;
  }
  EXPECT_EQ(files, 1u) << "updated, not duplicated";
}

TEST_F(EnableTest, BadSettingGetsTheShimsOwnError) {
  EXPECT_THAT(Enable({"demo", "--volume", volume_, "--select", "70x0"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("DISKWIRE_SELECT (--select): bad port")));
  EXPECT_THAT(Enable({"--volume", volume_, "--select", "1"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing the unit")));
  EXPECT_THAT(Enable({"../etc/passwd", "--volume", volume_, "--select", "1"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("is not a unit name")));
}

TEST_F(EnableTest, DisableRemovesExactlyWhatEnableWrote) {
  ASSERT_OK_AND_ASSIGN(UnitPlan plan,
                       Enable({"demo", "--volume", volume_, "--select", "1"}));
  ASSERT_THAT(WriteDropIn(plan), IsOk());
  const std::string other =
      root_ + "/etc/systemd/system/demo.service.d/limits.conf";
  std::ofstream(other) << "[Service]\nLimitNOFILE=65536\n";
  ASSERT_OK_AND_ASSIGN(UnitPlan off, PlanDisable({"demo", "--root", root_}));
  ASSERT_THAT(RemoveDropIn(off), IsOk());
  EXPECT_FALSE(fs::exists(plan.dropin));
  EXPECT_TRUE(fs::exists(other)) << "another drop-in stays";
  EXPECT_THAT(RemoveDropIn(off), StatusIs(absl::StatusCode::kNotFound));
  // A diskwire.conf somebody else wrote is not ours to remove.
  std::ofstream(plan.dropin) << "[Service]\nEnvironment=X=1\n";
  EXPECT_THAT(RemoveDropIn(off),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not written by diskwire enable")));
  EXPECT_TRUE(fs::exists(plan.dropin));
}

}  // namespace
}  // namespace diskwire
