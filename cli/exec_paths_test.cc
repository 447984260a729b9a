#include "cli/exec_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ExecPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/exec_paths_", getpid());
    mkdir(dir_.c_str(), 0700);
  }

  // Creates `rel` (and its directories) under the test directory.
  std::string Touch(const std::string& rel, mode_t mode = 0644) const {
    std::string path = absl::StrCat(dir_, "/", rel);
    for (size_t i = dir_.size() + 1; i < path.size(); ++i) {
      if (path[i] == '/') mkdir(path.substr(0, i).c_str(), 0700);
    }
    std::ofstream(path) << "x";
    chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
};

TEST_F(ExecPathsTest, AbsoluteIsLexical) {
  EXPECT_EQ(Absolute("/a/b", "/cwd"), "/a/b");
  EXPECT_EQ(Absolute("a/b", "/cwd"), "/cwd/a/b");
  EXPECT_EQ(Absolute("./a", "/cwd"), "/cwd/a");
  EXPECT_EQ(Absolute(".", "/cwd"), "/cwd");
  EXPECT_EQ(Absolute("a", "/"), "/a");
  EXPECT_EQ(Absolute("../a", "/cwd"), "/cwd/../a");
}

TEST_F(ExecPathsTest, ShimCandidatesInOrder) {
  EXPECT_THAT(
      ShimCandidates("/x/bin/diskwire"),
      ElementsAre("/x/bin/../shim/libdiskwire.so", "/x/bin/libdiskwire.so",
                  "/x/bin/../lib/diskwire/libdiskwire.so"));
}

TEST_F(ExecPathsTest, FindShimTakesTheFirstExistingCandidate) {
  std::string self = Touch("bin/diskwire", 0755);
  EXPECT_THAT(FindShim(self, std::nullopt, "/"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot find libdiskwire.so (looked for ")));
  Touch("lib/diskwire/libdiskwire.so");
  EXPECT_EQ(FindShim(self, std::nullopt, "/").value(),
            absl::StrCat(dir_, "/bin/../lib/diskwire/libdiskwire.so"));
  Touch("bin/libdiskwire.so");
  EXPECT_EQ(FindShim(self, std::nullopt, "/").value(),
            absl::StrCat(dir_, "/bin/libdiskwire.so"));
  Touch("shim/libdiskwire.so");
  EXPECT_EQ(FindShim(self, std::nullopt, "/").value(),
            absl::StrCat(dir_, "/bin/../shim/libdiskwire.so"));
}

TEST_F(ExecPathsTest, ShimOverride) {
  std::string lib = Touch("custom/lib.so");
  EXPECT_EQ(FindShim("/nowhere/diskwire", "custom/lib.so", dir_).value(), lib);
  EXPECT_THAT(FindShim("/nowhere/diskwire", "/absent.so", "/"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--shim: cannot use \"/absent.so\": No such file or "
                       "directory"));
  EXPECT_THAT(
      FindShim("/nowhere/diskwire", dir_, "/"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("--shim: \"", dir_, "\" is not a regular file")));
  std::string spaced = Touch("with space/lib.so");
  EXPECT_THAT(FindShim("/nowhere/diskwire", spaced, "/"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("\"", spaced,
                                    "\" cannot be preloaded: LD_PRELOAD "
                                    "splits paths at spaces and colons")));
}

TEST_F(ExecPathsTest, ResolveCommandLikeExecvp) {
  std::string a = absl::StrCat(dir_, "/a"), b = absl::StrCat(dir_, "/b");
  Touch("a/tool", 0644);  // Not executable: skipped.
  std::string good = Touch("b/tool", 0755);
  std::string path = absl::StrCat(a, ":", b);
  EXPECT_EQ(ResolveCommand("tool", path).value(), good);
  EXPECT_EQ(ResolveCommand(good, path).value(), good);
  EXPECT_THAT(ResolveCommand("sh", std::nullopt).value(), HasSubstr("/sh"));
  EXPECT_THAT(
      ResolveCommand("no-such-tool", path),
      StatusIs(absl::StatusCode::kNotFound, "no-such-tool: command not found"));
  EXPECT_THAT(ResolveCommand("tool", a),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "tool: not an executable file"));
  EXPECT_THAT(ResolveCommand("/no/such", path),
              StatusIs(absl::StatusCode::kNotFound,
                       "/no/such: No such file or directory"));
  EXPECT_THAT(ResolveCommand(dir_, path),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       absl::StrCat(dir_, ": not an executable file")));
}

}  // namespace
}  // namespace diskwire
