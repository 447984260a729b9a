#include "cli/flags.h"

#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using Args = std::vector<std::string>;
using ::testing::ElementsAre;
using ::testing::Pair;

const FlagSpec kSpecs[] = {{"volume", true}, {"select", true}, {"help", false}};

class FlagsTest : public ::testing::Test {
 protected:
  static absl::StatusOr<ParsedFlags> Parse(const Args& args) {
    return ParseFlags(args, kSpecs);
  }
  static std::string Error(const Args& args) {
    absl::StatusOr<ParsedFlags> f = Parse(args);
    EXPECT_THAT(f, StatusIs(absl::StatusCode::kInvalidArgument));
    return f.ok() ? "" : std::string(f.status().message());
  }
};

TEST_F(FlagsTest, ValuesSeparateOrInlineThenPositional) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags f, Parse({"--volume", "/v", "--select=1,2",
                                             "--help", "nc", "-l", "--x"}));
  EXPECT_THAT(f.flags, ElementsAre(Pair("volume", "/v"), Pair("select", "1,2"),
                                   Pair("help", "true")));
  EXPECT_THAT(f.positional, ElementsAre("nc", "-l", "--x"));
  EXPECT_EQ(f.Get("volume"), "/v");
  EXPECT_FALSE(f.Has("missing"));
}

TEST_F(FlagsTest, DoubleDashEndsFlags) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags f,
                       Parse({"--volume", "/v", "--", "--help"}));
  EXPECT_FALSE(f.Has("help"));
  EXPECT_THAT(f.positional, ElementsAre("--help"));
}

TEST_F(FlagsTest, ValueMayStartWithDashAndBeEmpty) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags f, Parse({"--volume", "-odd", "--select="}));
  EXPECT_EQ(f.Get("volume"), "-odd");
  EXPECT_EQ(f.Get("select"), "");
  EXPECT_TRUE(f.positional.empty());
}

TEST_F(FlagsTest, LoneDashIsPositional) {
  ASSERT_OK_AND_ASSIGN(ParsedFlags f, Parse({"-", "x"}));
  EXPECT_THAT(f.positional, ElementsAre("-", "x"));
}

TEST_F(FlagsTest, MistakesAreOneLineNamingTheFlag) {
  EXPECT_EQ(Error({"--volum", "/v"}),
            "unknown flag --volum (did you mean --volume?)");
  EXPECT_EQ(Error({"--frobnicate"}), "unknown flag --frobnicate");
  EXPECT_EQ(Error({"--volume"}), "flag --volume needs a value");
  EXPECT_EQ(Error({"--help=yes"}), "flag --help takes no value");
  EXPECT_EQ(Error({"--volume", "/a", "--volume=/b"}),
            "flag --volume given twice");
  EXPECT_EQ(Error({"-v", "/a"}),
            "unknown option -v (flags are long: --name VALUE)");
}

}  // namespace
}  // namespace diskwire
