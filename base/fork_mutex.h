// File: base/fork_mutex.h
// An absl::Mutex across fork(): the prepare handler locks it (so that what it
// guards is whole), the parent unlocks it, and the child makes it new.

#ifndef DISKWIRE_BASE_FORK_MUTEX_H_
#define DISKWIRE_BASE_FORK_MUTEX_H_

#include <new>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace diskwire {

// In the child of fork(): `mu`, held by the forking thread or by nobody, made
// new and unlocked. Unlocking the copy instead would hand it to a thread of
// the parent that was queued on it at the fork and does not exist in the
// child: absl then waits for that waiter to run and wakes nobody else, and
// the child's next contended Lock() waits forever. With absl's deadlock
// detection on (tests; the shim turns it off), the new mutex gets a new
// identity, so that the forking thread's record of holding the old one does
// not read as a cycle.
inline void RenewInForkChild(absl::Mutex* mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu->ForgetDeadlockInfo();
  new (mu) absl::Mutex();
}

}  // namespace diskwire

#endif  // DISKWIRE_BASE_FORK_MUTEX_H_
