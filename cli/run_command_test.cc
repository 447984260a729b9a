#include "cli/run_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using Args = std::vector<std::string>;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class RunCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/run_command_", getpid());
    mkdir(dir_.c_str(), 0700);
    volume_ = absl::StrCat(dir_, "/vol");
    mkdir(volume_.c_str(), 0700);
    char cwd[4096];
    ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
    runfiles_ = cwd;
    diskwire_ = Runfile("cli/diskwire");
    standin_ = Runfile("cli/testdata/libstandin.so");
    print_env_ = Runfile("cli/testdata/print_env");
    static_hello_ = Runfile("cli/testdata/static_hello");
  }

  std::string Runfile(const std::string& rel) const {
    return absl::StrCat(runfiles_, "/", rel);
  }

  // A context with a fixed environment and working directory.
  RunContext Context(Args environ = {"PATH=/usr/bin:/bin"}) const {
    return RunContext{std::move(environ), dir_, "/nowhere/bin/diskwire"};
  }

  // Runs `binary args...` with exactly `env`, capturing its output.
  Outcome Exec(const std::string& binary, const Args& args,
               const Args& env = {"PATH=/usr/bin:/bin"}) const {
    std::string out = absl::StrCat(dir_, "/out"),
                err = absl::StrCat(dir_, "/err");
    pid_t pid = fork();
    if (pid == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      std::vector<char*> argv{const_cast<char*>(binary.c_str())};
      for (const std::string& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      std::vector<char*> envp;
      for (const std::string& v : env)
        envp.push_back(const_cast<char*>(v.c_str()));
      envp.push_back(nullptr);
      execve(binary.c_str(), argv.data(), envp.data());
      _exit(99);
    }
    Outcome o;
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    o.out = ReadAll(out);
    o.err = ReadAll(err);
    return o;
  }

  // `diskwire run` with the stand-in shim and the minimal valid flags.
  Outcome Run(const Args& more,
              const Args& env = {"PATH=/usr/bin:/bin"}) const {
    Args args = {"run",   "--shim",   standin_, "--volume",
                 volume_, "--select", "7000"};
    args.insert(args.end(), more.begin(), more.end());
    return Exec(diskwire_, args, env);
  }

  std::string dir_, volume_, runfiles_;
  std::string diskwire_, standin_, print_env_, static_hello_;
};

// --- PlanRun, in process ---

TEST_F(RunCommandTest, FlagsBecomeVariablesWithAbsolutePaths) {
  ASSERT_OK_AND_ASSIGN(
      RunPlan plan,
      PlanRun({"--shim", standin_, "--volume", "vol", "--select", "7000",
               "--peer-timeout-ms=5000", "--log", "./dw.log", "--", "sh", "-c",
               "true"},
              Context({"PATH=/usr/bin:/bin", "DISKWIRE_MODE=storage",
                       "DISKWIRE_SELECT=22"})));
  EXPECT_THAT(plan.env,
              ElementsAre("PATH=/usr/bin:/bin", "DISKWIRE_MODE=storage",
                          "DISKWIRE_SELECT=7000",
                          absl::StrCat("DISKWIRE_VOLUME=", volume_),
                          "DISKWIRE_PEER_TIMEOUT_MS=5000",
                          absl::StrCat("DISKWIRE_LOG=", dir_, "/dw.log"),
                          absl::StrCat("LD_PRELOAD=", standin_)));
  EXPECT_EQ(plan.path, "/usr/bin/sh");
  EXPECT_THAT(plan.argv, ElementsAre("sh", "-c", "true"));
  EXPECT_THAT(plan.warnings, IsEmpty());
}

TEST_F(RunCommandTest, KeywordLogValuesStayAsGiven) {
  ASSERT_OK_AND_ASSIGN(RunPlan plan,
                       PlanRun({"--shim", standin_, "--volume", volume_,
                                "--select", "1", "--log", "off", "true"},
                               Context()));
  EXPECT_THAT(plan.env, Contains("DISKWIRE_LOG=off"));
}

TEST_F(RunCommandTest, QuietSilencesEveryLine) {
  for (const char* quiet : {"-q", "--quiet"}) {
    ASSERT_OK_AND_ASSIGN(RunPlan plan,
                         PlanRun({"--shim", standin_, "--volume", volume_,
                                  "--select", "1", quiet, "true"},
                                 Context({"DISKWIRE_LOG=stderr"})));
    EXPECT_THAT(plan.env, Contains("DISKWIRE_LOG=off")) << quiet;
    EXPECT_THAT(plan.env, Not(Contains("DISKWIRE_LOG=stderr"))) << quiet;
  }
  EXPECT_THAT(PlanRun({"--shim", standin_, "--volume", volume_, "--select", "1",
                       "-q", "--log", "off", "true"},
                      Context()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--quiet and --log contradict")));
}

TEST_F(RunCommandTest, PreloadIsAppendedOnce) {
  Args flags = {"--shim",   standin_, "--volume", volume_,
                "--select", "1",      "true"};
  ASSERT_OK_AND_ASSIGN(RunPlan plan,
                       PlanRun(flags, Context({"LD_PRELOAD=/opt/other.so"})));
  EXPECT_THAT(plan.env,
              Contains(absl::StrCat("LD_PRELOAD=/opt/other.so:", standin_)));
  std::string already = absl::StrCat("LD_PRELOAD=/a.so ", standin_);
  ASSERT_OK_AND_ASSIGN(plan, PlanRun(flags, Context({already})));
  EXPECT_THAT(plan.env, Contains(already));
}

TEST_F(RunCommandTest, PlanErrorsAndTheirExitCodes) {
  struct Case {
    Args args;
    std::string message;
    int exit_code;
  };
  const Case cases[] = {
      {{"--volume", volume_, "--select", "1"},
       "missing the program to run (diskwire run [FLAGS] -- CMD [ARGS...])",
       2},
      {{"--volum", volume_, "true"},
       "unknown flag --volum (did you mean --volume?)",
       2},
      {{"--volume", volume_, "--select", "70x0", "true"},
       "DISKWIRE_SELECT (--select): bad port \"70x0\" in \"70x0\" (want *, "
       "1..65535 or a range LO-HI)",
       2},
      {{"--select", "1", "true"},
       "DISKWIRE_VOLUME (--volume): not set, but DISKWIRE_SELECT is (diskwire "
       "needs a volume; unset every DISKWIRE_* variable to run without it)",
       2},
      {{"--volume", "/absent-volume", "--select", "1", "true"},
       "DISKWIRE_VOLUME (--volume): cannot use \"/absent-volume\": No such "
       "file or directory",
       2},
      {{"--volume", volume_, "--select", "1", "true"},
       "cannot find libdiskwire.so (looked for "
       "/nowhere/bin/../shim/libdiskwire.so, /nowhere/bin/libdiskwire.so, "
       "/nowhere/bin/../lib/diskwire/libdiskwire.so); build "
       "//shim:libdiskwire.so or pass --shim PATH",
       1},
      {{"--shim", standin_, "--volume", volume_, "--select", "1",
        "no-such-program"},
       "no-such-program: command not found",
       127},
      {{"--shim", standin_, "--volume", volume_, "--select", "1", dir_},
       absl::StrCat(dir_, ": not an executable file"),
       126},
  };
  for (const Case& c : cases) {
    absl::StatusOr<RunPlan> plan = PlanRun(c.args, Context());
    ASSERT_FALSE(plan.ok()) << c.message;
    EXPECT_EQ(plan.status().message(), c.message);
    EXPECT_EQ(ExitCodeFor(plan.status()), c.exit_code) << c.message;
  }
}

TEST_F(RunCommandTest, CallersMistypedVariableIsCaught) {
  EXPECT_THAT(PlanRun({"--shim", standin_, "--volume", volume_, "--select", "1",
                       "true"},
                      Context({"DISKWIRE_DETECTMS=5"})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "DISKWIRE_DETECTMS: unknown variable (did you mean "
                       "DISKWIRE_DETECT_MS?)"));
}

TEST_F(RunCommandTest, HelpListsEveryVariableFlag) {
  ASSERT_OK_AND_ASSIGN(RunPlan plan, PlanRun({"--help"}, Context()));
  EXPECT_TRUE(plan.help);
  std::string help = RunHelp();
  for (const char* flag : {"--volume PATH",
                           "--send-volume PATH",
                           "--recv-volume PATH",
                           "--select RULES",
                           "--mode failover|storage",
                           "--detect-ms MS",
                           "--peer-timeout-ms MS",
                           "--max-lag-ms MS",
                           "--heartbeat-ms MS",
                           "--poll-ms MS",
                           "--replay-cap SIZE",
                           "--durability",
                           "--key-file PATH",
                           "--node NAME",
                           "--log stderr|syslog|off|/PATH",
                           "--log-level",
                           "--on-error",
                           "--shim PATH",
                           "-q, --quiet",
                           "--help"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
}

// --- The diskwire binary, end to end ---

TEST_F(RunCommandTest, ChildGetsTheEnvironmentAndThePreload) {
  Outcome o = Run({"--mode", "storage", "--", print_env_, "a", "--b"},
                  {"PATH=/usr/bin:/bin", "DISKWIRE_NODE=n1"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, absl::StrCat("DISKWIRE_MODE=storage\n"
                                "DISKWIRE_NODE=n1\n"
                                "DISKWIRE_SELECT=7000\n"
                                "DISKWIRE_VOLUME=",
                                volume_, "\nLD_PRELOAD=", standin_,
                                "\nSTANDIN_LOADED=1\narg=a\narg=--b\n"));
  EXPECT_EQ(o.err, "");
}

TEST_F(RunCommandTest, ExitStatusIsTheProgramsOwn) {
  Outcome o = Run({"sh", "-c", "exit 7"});
  EXPECT_EQ(o.exit_code, 7);
}

TEST_F(RunCommandTest, BadFlagIsOneLineAndExitTwo) {
  Outcome o = Run({"--select", "x", print_env_});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err, "diskwire run: flag --select given twice\n");
  EXPECT_EQ(o.out, "");
}

TEST_F(RunCommandTest, StaticProgramWarnsButRuns) {
  Outcome o = Run({static_hello_});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_EQ(o.err, absl::StrCat("diskwire run: warning: ", static_hello_,
                                " is statically linked: LD_PRELOAD has no "
                                "effect on it, so diskwire will not carry its "
                                "connections\n"));
}

TEST_F(RunCommandTest, FindsTheShimOfAnInstallLayout) {
  std::string bin = absl::StrCat(dir_, "/prefix/bin");
  std::string lib = absl::StrCat(dir_, "/prefix/lib/diskwire");
  for (const std::string& d : {absl::StrCat(dir_, "/prefix"), bin,
                               absl::StrCat(dir_, "/prefix/lib"), lib}) {
    mkdir(d.c_str(), 0755);
  }
  std::string copy = bin + "/diskwire";
  std::ofstream(copy, std::ios::binary) << ReadAll(diskwire_);
  chmod(copy.c_str(), 0755);
  std::ofstream(lib + "/libdiskwire.so", std::ios::binary) << ReadAll(standin_);
  Outcome o =
      Exec(copy, {"run", "--volume", volume_, "--select", "1", print_env_});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_THAT(o.out, HasSubstr(absl::StrCat("LD_PRELOAD=", bin,
                                            "/../lib/diskwire/libdiskwire.so\n"
                                            "STANDIN_LOADED=1\n")));
}

TEST_F(RunCommandTest, TopLevelUsage) {
  Outcome none = Exec(diskwire_, {});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(none.err, "diskwire: missing command (see diskwire --help)\n");
  Outcome bogus = Exec(diskwire_, {"frob"});
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_EQ(bogus.err,
            "diskwire: unknown command frob (see diskwire --help)\n");
  Outcome help = Exec(diskwire_, {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out,
              HasSubstr("DISKWIRE_PEER_TIMEOUT_MS=MS  (default 10000)"));
  EXPECT_THAT(help.out, HasSubstr("  run\t"));
  Outcome run_help = Exec(diskwire_, {"help", "run"});
  EXPECT_EQ(run_help.exit_code, 0);
  EXPECT_EQ(run_help.out, RunHelp());
}

}  // namespace
}  // namespace diskwire
