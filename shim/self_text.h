// File: shim/self_text.h
// Where libdiskwire's own code lies in memory. A return address inside it
// means the call came from diskwire itself (core or storage calling a libc
// function by name, from a hook or an engine thread); the crash handler uses
// the same range to tell diskwire frames from the application's.
//
// Thread safety: InitSelfText() runs once (pthread_once) and is called before
// the engine is published; readers on hook paths that have seen the engine
// see the range. Reads are async-signal-safe.

#ifndef DISKWIRE_SHIM_SELF_TEXT_H_
#define DISKWIRE_SHIM_SELF_TEXT_H_

#include <cstdint>

namespace diskwire::shim {

namespace internal {
extern uintptr_t g_self_base;
extern uintptr_t g_self_text_begin;
extern uintptr_t g_self_text_end;
// The engine's library (libdiskwire_engine.so), once loaded.
extern uintptr_t g_engine_text_begin;
extern uintptr_t g_engine_text_end;
}  // namespace internal

// Finds this library's load address and executable segment. Idempotent.
void InitSelfText();
// Records the executable segment that holds `address_in_it`: the engine's
// library, loaded later than this one. Call before the engine is published.
void AddEngineText(const void* address_in_it);

// Is `address` inside diskwire's code (this library's or the engine's)? false
// until InitSelfText() ran.
inline bool InDiskwireText(const void* address) {
  const auto a = reinterpret_cast<uintptr_t>(address);
  return (a >= internal::g_self_text_begin && a < internal::g_self_text_end) ||
         (a >= internal::g_engine_text_begin &&
          a < internal::g_engine_text_end);
}

// The library's load address (for offsets that addr2line understands).
inline uintptr_t SelfBase() { return internal::g_self_base; }

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_SELF_TEXT_H_
