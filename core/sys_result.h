// File: core/sys_result.h
// The value of a libc-style call and its errno, carried together so that core/
// can return what libc would without touching the caller's errno until the shim
// decides to.

#ifndef DISKWIRE_CORE_SYS_RESULT_H_
#define DISKWIRE_CORE_SYS_RESULT_H_

#include <sys/types.h>

namespace diskwire {

struct SysResult {
  ssize_t value = 0;  // What the call returned; -1 on failure.
  int error = 0;      // errno when value == -1, otherwise 0.

  bool ok() const { return value != -1; }
  static SysResult Ok(ssize_t v) { return {v, 0}; }
  static SysResult Fail(int err) { return {-1, err}; }
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SYS_RESULT_H_
