// File: shim/engine_entry.cc
// The one symbol libdiskwire_engine.so exports: the preload library
// (shim/engine_loader.cc) loads the engine and gets it through this.

#include "core/engine.h"

extern "C" __attribute__((visibility("default"))) diskwire::Engine*
diskwire_engine_get(diskwire::OsCalls* os) {
  return diskwire::Engine::Get(os);
}
