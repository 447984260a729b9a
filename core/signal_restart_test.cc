#include "core/signal_restart.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

// Installs a do-nothing handler for `sig` with `flags` while it lives.
class ScopedHandler {
 public:
  ScopedHandler(int sig, int flags) : sig_(sig) {
    struct sigaction act {};
    act.sa_handler = [](int) {};
    act.sa_flags = flags;
    sigemptyset(&act.sa_mask);
    sigaction(sig_, &act, &old_);
  }
  ~ScopedHandler() { sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_;
};

TEST(SignalRestartTest, NoHandlerRestarts) {
  EXPECT_TRUE(RestartsAfterSignal(false));
}

TEST(SignalRestartTest, ACallWithATimeoutNeverRestarts) {
  EXPECT_FALSE(RestartsAfterSignal(true));
}

TEST(SignalRestartTest, RestartsOnlyIfEveryHandlerAsksForIt) {
  ScopedHandler usr1(SIGUSR1, SA_RESTART);
  EXPECT_TRUE(RestartsAfterSignal(false));
  {
    ScopedHandler alarm(SIGALRM, 0);  // alarm() timeouts, Python's handlers
    EXPECT_FALSE(RestartsAfterSignal(false));
  }
  EXPECT_TRUE(RestartsAfterSignal(false));
}

TEST(SignalRestartTest, IgnoredSignalsDoNotCount) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old;
  sigaction(SIGPIPE, &ignore, &old);
  EXPECT_TRUE(RestartsAfterSignal(false));
  sigaction(SIGPIPE, &old, nullptr);
}

}  // namespace
}  // namespace diskwire
