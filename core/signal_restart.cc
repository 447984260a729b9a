#include "core/signal_restart.h"

#include <signal.h>

namespace diskwire {

bool RestartsAfterSignal(bool timed) {
  if (timed) return false;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction act;
    if (sigaction(sig, nullptr, &act) != 0) continue;  // glibc's own signals
    const bool handled =
        (act.sa_flags & SA_SIGINFO)
            ? act.sa_sigaction != nullptr
            : act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN;
    if (handled && (act.sa_flags & SA_RESTART) == 0) return false;
  }
  return true;
}

}  // namespace diskwire
