// File: shim/process_hooks.h
// Processes: vfork, daemon, the exec family and syscall(). fork() itself is
// not wrapped: the engine's pthread_atfork handlers run around the real one.

#ifndef DISKWIRE_SHIM_PROCESS_HOOKS_H_
#define DISKWIRE_SHIM_PROCESS_HOOKS_H_

namespace diskwire::shim {

// Makes vfork() a fork() from now on. Called when the engine is created: a
// vfork child shares the parent's memory, so any hook it ran before exec (a
// close() of an owned fd, say) would change the parent's engine; fork() runs
// the engine's atfork handlers instead. Without an engine vfork() is the real
// one, reached by a tail jump so that the child never returns through a frame
// of ours.
void UseForkForVfork();

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_PROCESS_HOOKS_H_
