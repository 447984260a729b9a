// File: shim/engine_ref.h
// How the hooks reach the process's Engine: a fast, lock-free pointer load on
// every hook, and lazy creation on the first socket-creating hook.
//
// Thread safety: everything here may be called from any thread, and from hooks
// that run before static initialisation; creation runs once (pthread_once).

#ifndef DISKWIRE_SHIM_ENGINE_REF_H_
#define DISKWIRE_SHIM_ENGINE_REF_H_

#include <atomic>

#include "core/engine.h"
#include "shim/self_text.h"

namespace diskwire::shim {

namespace internal {
extern std::atomic<Engine*> g_engine;
}  // namespace internal

// The engine if one has been created, else nullptr. One relaxed load: safe on
// the pass-through path because an fd can only be owned after the engine that
// owns it was published with release semantics (OnConnect/OnAccept run on a
// thread that has already seen it).
inline Engine* CurrentEngine() {
  return internal::g_engine.load(std::memory_order_acquire);
}

// Is `fd` an owned socket? The pass-through check of every data hook.
inline Engine* OwningEngine(int fd) {
  Engine* engine = CurrentEngine();
  return engine != nullptr && engine->Owns(fd) ? engine : nullptr;
}

// OwningEngine(fd) for the data hooks: a dormant fd is claimed first, and its
// call passes straight through when this process cannot carry it.
Engine* ClaimDormant(Engine* engine, int fd);
inline Engine* DataEngine(int fd) {
  Engine* engine = OwningEngine(fd);
  if (engine == nullptr || !engine->Dormant(fd)) return engine;
  return ClaimDormant(engine, fd);
}

// The engine when `fd` is a UDP socket it looks at (core/engine.h): its sends
// go through Engine::SendDatagram. Checked after DataEngine() found nothing.
inline Engine* DatagramEngine(int fd) {
  Engine* engine = CurrentEngine();
  return engine != nullptr && engine->CarriesDatagrams(fd) ? engine : nullptr;
}

// The engine, unless `caller` (a hook's return address) lies inside
// libdiskwire: diskwire's own calls by libc name (storage closing its files,
// the engine opening a connection) then pass straight through, never back into
// the engine. (A tail call into libc from the outermost diskwire frame would
// hide it; hooks and thread entry functions, the outermost frames, make none.)
inline Engine* EngineFor(const void* caller) {
  Engine* engine = CurrentEngine();
  return engine != nullptr && !InDiskwireText(caller) ? engine : nullptr;
}

// OwningEngine(fd) for hooks that diskwire itself may call by name: nullptr
// when `caller` lies inside libdiskwire. Checked only once `fd` is owned.
inline Engine* OwningEngine(int fd, const void* caller) {
  Engine* engine = OwningEngine(fd);
  return engine != nullptr && !InDiskwireText(caller) ? engine : nullptr;
}
inline Engine* DataEngine(int fd, const void* caller) {
  if (!OwningEngine(fd) || InDiskwireText(caller)) return nullptr;
  return DataEngine(fd);
}

// Returns the engine, creating it on the first call (Engine::Get with the real
// calls); nullptr when diskwire is not configured. A call that re-enters from
// the engine's own creation on the same thread gets nullptr. On creation also
// registers the fork handlers and installs the crash handler.
Engine* EnsureEngine();

// Remembers that `epfd` is an epoll instance holding owned fds, so that its
// close goes through Engine::Close. Lock-free.
void MarkEpollFd(int epfd);
bool IsMarkedEpollFd(int epfd);
void UnmarkEpollFd(int epfd);

}  // namespace diskwire::shim

#endif  // DISKWIRE_SHIM_ENGINE_REF_H_
