// File: shim/crash_handler.h
// Backtraces for faults inside diskwire, without taking the fatal signals away
// from the application.
//
// Once installed (when the engine is created), the handler owns SIGSEGV,
// SIGBUS, SIGFPE, SIGILL and SIGABRT at the kernel level, and the sigaction()
// and signal() hooks record what the application installs for them instead of
// installing it. On a fault the handler prints, when the faulting thread is
// inside diskwire (a hook that entered the engine, or any frame in this
// library), a backtrace tagged "diskwire" to stderr using only write(2); then
// it hands the signal to the application's handler, or to the default action.
// No other signal is touched.

#ifndef DISKWIRE_SHIM_CRASH_HANDLER_H_
#define DISKWIRE_SHIM_CRASH_HANDLER_H_

namespace diskwire::shim {

// Installs the handler; idempotent and thread-safe. Loads libunwind privately
// (RTLD_LOCAL) so that its _Unwind_* symbols never replace the application's
// C++ exception unwinder; without libunwind the handler prints addresses only.
void InstallCrashHandler();

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_CRASH_HANDLER_H_
