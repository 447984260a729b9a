// File: core/signal_restart.h
// What the kernel does with a blocking call that a signal handler
// interrupted: the engine's own waits (a send waiting for room, a receive
// over the volume, a connect through an outage) end or go on as the call the
// application made would have.

#ifndef DISKWIRE_CORE_SIGNAL_RESTART_H_
#define DISKWIRE_CORE_SIGNAL_RESTART_H_

namespace diskwire {

// Whether the kernel would restart a blocking socket call that a signal
// handler interrupted before the call moved a byte: when the handler asked
// for SA_RESTART and the socket has no timeout for the call (`timed`: the
// kernel's sock_intr_errno), else the call fails with EINTR. Which signal
// came is not known after the fact, so the answer is yes only if every
// handled signal asked for SA_RESTART. Reads the process's signal actions
// (sigaction); for the rare path after an EINTR.
bool RestartsAfterSignal(bool timed);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SIGNAL_RESTART_H_
