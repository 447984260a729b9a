// File: shim/preload_test.cc
// Runs shim/testing/shim_probe under LD_PRELOAD of the built libraries and
// compares what it sees with a run without them.
//
// libdiskwire.so is the production library; without DISKWIRE_* it must behave
// exactly as without diskwire (its engine is tested in real_engine_test.cc).
// libdiskwire_fake.so carries the test engine of shim/testing/fake_engine.cc,
// which selects by port ("*": all) and passes every call through, so with
// everything selected the probe's transcript must still be identical while
// every byte crosses the engine.

#include <signal.h>
#include <sys/wait.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shim/testing/preload_fixture.h"

namespace diskwire::testing_shim {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(PreloadTest, TranscriptWithoutPreloadIsMeaningful) {
  Result base = Probe("transcript", {});
  ASSERT_TRUE(Exited(base, 0)) << base.err;
  EXPECT_THAT(base.out, AllOf(HasSubstr("read empty nonblocking = -1 EAGAIN"),
                              HasSubstr("connect refused = -1 ECONNREFUSED"),
                              HasSubstr("sendfile offset = 150000"),
                              HasSubstr("splice socket->pipe = 1000"),
                              HasSubstr("vfork child exit = 7"),
                              Not(HasSubstr("sum matches = 0"))));
}

TEST_F(PreloadTest, UnconfiguredPreloadChangesNothing) {
  Result base = Probe("transcript", {});
  Result preloaded = Probe("transcript", {Real()});
  ASSERT_TRUE(Exited(preloaded, 0)) << preloaded.err;
  EXPECT_EQ(preloaded.out, base.out);
  EXPECT_EQ(preloaded.err, "");
}

TEST_F(PreloadTest, ConfiguredPreloadWithNothingSelectedChangesNothing) {
  Result base = Probe("transcript", {});
  Result fake = Probe("transcript", {Fake(), Volume(), "DISKWIRE_SELECT=1"});
  ASSERT_TRUE(Exited(fake, 0)) << fake.err;
  EXPECT_EQ(fake.out, base.out);
  // The engine existed and saw the connections, yet took none of them.
  EXPECT_THAT(fake.err, AllOf(HasSubstr("sends=0 recvs=0"),
                              HasSubstr("connects=3 accepts=3")));
  EXPECT_TRUE(VolumeIsEmpty());
}

TEST_F(PreloadTest, EveryByteOfSelectedSocketsCrossesTheEngineUnchanged) {
  Result base = Probe("transcript", {});
  Result fake = Probe("transcript", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  ASSERT_TRUE(Exited(fake, 0)) << fake.err;
  EXPECT_EQ(fake.out, base.out);
  // 3+4+9+3+16+3+4+9+5 data-call bytes, 150000+5000+3000 by sendfile,
  // 1000+500 by splice, 4 on a dup, 2 after shutdown, 2 on the accept4'd pair.
  EXPECT_THAT(fake.err, HasSubstr("sent=159564 received=159564"));
  EXPECT_THAT(fake.err, AllOf(HasSubstr("dups=1"), HasSubstr("epoll_ctls=2"),
                              HasSubstr("introspections=6")));
}

TEST_F(PreloadTest, CallsBeforeTheShimIsInitialisedWork) {
  const std::string early = Runfile("libearly_caller.so");
  const std::string both =
      "LD_PRELOAD=" + Runfile("libdiskwire_fake.so") + " " + early;
  Result r = Probe("transcript",
                   {both, Volume(), "DISKWIRE_SELECT=*", "LD_DEBUG=files"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  // The early library's constructor did run before the shim's.
  const size_t early_init = r.err.find("calling init: " + early);
  const size_t shim_init =
      r.err.find("calling init: " + Runfile("libdiskwire_fake.so"));
  ASSERT_NE(early_init, std::string::npos) << r.err;
  ASSERT_NE(shim_init, std::string::npos) << r.err;
  EXPECT_LT(early_init, shim_init);
  EXPECT_THAT(r.err, AllOf(HasSubstr("early: close(-1) = -1 EBADF"),
                           HasSubstr("early: pipe round trip ok"),
                           HasSubstr("early: tcp round trip ok")));
  // Its TCP bytes crossed the engine: 4 more each way than the transcript's.
  EXPECT_THAT(r.err, HasSubstr("sent=159568 received=159568"));
  EXPECT_EQ(r.out, Probe("transcript", {}).out);
}

TEST_F(PreloadTest, WakesOfTheEngineAreInvisibleToPollAndSelect) {
  Result r = Probe("wake", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_THAT(r.out, HasSubstr("poll after wakes = 1 revents=1\n"));
  EXPECT_THAT(r.out, HasSubstr("select after wakes = 1 revents=1\n"));
  EXPECT_THAT(r.out, HasSubstr("poll wake only = 0 revents=0 waited_full=1"));
}

TEST_F(PreloadTest, EnginePrivateFdsSurviveCloseAndDup) {
  Result r = Probe("private", {Fake(), Volume(), "DISKWIRE_SELECT=1"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_THAT(r.out,
              AllOf(HasSubstr("close private = -1 EBADF"),
                    HasSubstr("dup2 onto private = -1 EBUSY"),
                    HasSubstr("dup3 onto private = -1 EBUSY"),
                    HasSubstr("close_range over private = 0"),
                    HasSubstr("closefrom closed the application's fd "
                              "= -1 EBADF"),
                    HasSubstr("private fd still open = 1"),
                    HasSubstr("engine's own connect offered to it = 0"),
                    HasSubstr("engine's own close of its private fd = 0"),
                    HasSubstr("  private fd now closed = -1 EBADF")));
}

TEST_F(PreloadTest, FaultInsideDiskwirePrintsBacktraceThenAppHandlerRuns) {
  Result r = Probe("crash-inside", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  EXPECT_TRUE(Exited(r, 42)) << r.err;
  const size_t banner = r.err.find("diskwire: fatal SIGSEGV inside diskwire");
  const size_t frame = r.err.find("diskwire:   #0 ");
  const size_t ours = r.err.find("[libdiskwire+0x");
  const size_t app = r.err.find("application SIGSEGV handler ran");
  ASSERT_NE(banner, std::string::npos) << r.err;
  ASSERT_NE(frame, std::string::npos) << r.err;
  ASSERT_NE(ours, std::string::npos) << r.err;
  ASSERT_NE(app, std::string::npos) << r.err;
  EXPECT_LT(banner, app);
}

TEST_F(PreloadTest, FaultInsideDiskwireWithoutAppHandlerKillsWithTheSignal) {
  Result r = Probe("crash-default", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  ASSERT_TRUE(WIFSIGNALED(r.status)) << r.err;
  EXPECT_EQ(WTERMSIG(r.status), SIGSEGV);
  EXPECT_THAT(r.err, HasSubstr("diskwire: fatal SIGSEGV inside diskwire"));
}

TEST_F(PreloadTest, AbortInsideDiskwirePrintsBacktraceAndStillAborts) {
  Result r = Probe("crash-abort", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  ASSERT_TRUE(WIFSIGNALED(r.status)) << r.err;
  EXPECT_EQ(WTERMSIG(r.status), SIGABRT);
  EXPECT_THAT(r.err, HasSubstr("diskwire: fatal SIGABRT inside diskwire"));
}

TEST_F(PreloadTest, FaultInTheApplicationIsNotBlamedOnDiskwire) {
  Result r = Probe("crash-app", {Fake(), Volume(), "DISKWIRE_SELECT=*"});
  EXPECT_TRUE(Exited(r, 42)) << r.err;
  EXPECT_THAT(r.err, HasSubstr("application SIGSEGV handler ran"));
  EXPECT_THAT(r.err, Not(HasSubstr("diskwire: fatal")));
}

TEST_F(PreloadTest, ForkAndVforkChildrenRunTheEngineChildHandler) {
  Result r = Probe("fork", {Fake(), Volume(), "DISKWIRE_SELECT=1"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_THAT(r.out, HasSubstr("fork child: fork_children=1\n"));
  // vfork() became fork(): the child has its own engine state.
  EXPECT_THAT(r.out, HasSubstr("vfork child: fork_children=1\n"));
}

TEST_F(PreloadTest, ExecKeepsPreloadAndConfigurationTheProgramCleared) {
  Result bare = Probe("exec", {Volume()});
  EXPECT_THAT(bare.out, HasSubstr("execv: LD_PRELOAD missing, "
                                  "DISKWIRE_VOLUME=(missing)"));
  Result r = Probe("exec", {Real(), Volume()});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  const std::string kept =
      "LD_PRELOAD present, DISKWIRE_VOLUME=" + volume_ + "\n";
  for (const char* call :
       {"execv", "execve", "execl", "execlp", "execvp", "execle", "execvpe",
        "fexecve", "posix_spawn", "posix_spawnp"}) {
    EXPECT_THAT(r.out, HasSubstr(std::string(call) + ": " + kept)) << r.out;
  }
}

TEST_F(PreloadTest, ProbeCallsTheFortifiedVariants) {
  Result r =
      Run({"/usr/bin/nm", "-D", "--undefined-only", Runfile("shim_probe")},
          {"PATH=/usr/bin:/bin"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  for (const char* sym : {"__read_chk", "__recv_chk", "__recvfrom_chk",
                          "__poll_chk", "__ppoll_chk"}) {
    EXPECT_THAT(r.out, HasSubstr(sym));
  }
}

TEST_F(PreloadTest, LibraryExportsOnlyHooks) {
  Result r =
      Run({"/usr/bin/nm", "-D", "--defined-only", Runfile("libdiskwire.so")},
          {"PATH=/usr/bin:/bin"});
  ASSERT_TRUE(Exited(r, 0)) << r.err;
  EXPECT_THAT(r.out,
              AllOf(HasSubstr(" T connect\n"), HasSubstr(" T read\n"),
                    HasSubstr(" T __recv_chk\n"), Not(HasSubstr(" T _Z"))));
}

}  // namespace
}  // namespace diskwire::testing_shim
