// File: shim/engine_loader.cc
// Engine::Get for the preload library: the engine (core, storage, abseil,
// libsodium, libstdc++) lives in libdiskwire_engine.so beside it and is loaded
// only when a DISKWIRE_* variable is set, at the first hook that needs it. A
// process without a configuration loads nothing but this small library, and
// one that never makes a socket never loads the engine either.
//
// No C++ library here: this file is part of what every process pays for.

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/engine.h"
#include "shim/self_text.h"

extern "C" char** environ;

namespace diskwire {
namespace {

constexpr char kEngineLibrary[] = "libdiskwire_engine.so";
constexpr char kEntry[] = "diskwire_engine_get";
// A directory's path, a slash and kEngineLibrary.
constexpr size_t kPathSize = PATH_MAX + sizeof(kEngineLibrary) + 1;

// DISKWIRE_ON_ERROR=passthrough (core/config.h): an engine that cannot load
// leaves the program to run without diskwire; otherwise it stops, as a bad
// configuration does.
bool PassthroughOnError() {
  const char* v = getenv("DISKWIRE_ON_ERROR");
  return v != nullptr && strcasecmp(v, "passthrough") == 0;
}

[[noreturn]] void Stop() {
  fprintf(stderr,
          "diskwire: stopping (set DISKWIRE_ON_ERROR=passthrough to run "
          "without diskwire)\n");
  exit(78);  // EX_CONFIG, as core's Engine::Get
}

bool Configured() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (strncmp(*e, "DISKWIRE_", 9) == 0) return true;
  }
  return false;
}

// `directory`/libdiskwire_engine.so into `out`; false when it does not fit.
bool EnginePathIn(const char* directory, char* out, size_t size) {
  const int n = snprintf(out, size, "%s/%s", directory, kEngineLibrary);
  return n > 0 && static_cast<size_t>(n) < size;
}

// The engine's library beside this one: beside the file LD_PRELOAD named, or
// beside the file it links to (a symlink in /usr/lib pointing to a package's
// directory).
void* OpenEngine(char (&tried)[kPathSize]) {
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&Configured), &self) == 0 ||
      self.dli_fname == nullptr) {
    snprintf(tried, sizeof(tried), "(cannot find libdiskwire.so itself)");
    return nullptr;
  }
  char paths[2][kPathSize];
  const char* names[2] = {self.dli_fname, nullptr};
  char real[PATH_MAX];
  if (realpath(self.dli_fname, real) != nullptr) names[1] = real;
  for (int i = 0; i < 2; ++i) {
    if (names[i] == nullptr) continue;
    char directory[PATH_MAX];
    snprintf(directory, sizeof(directory), "%s", names[i]);
    char* slash = strrchr(directory, '/');
    if (slash == nullptr) {
      snprintf(directory, sizeof(directory), ".");
    } else {
      *slash = '\0';
    }
    if (!EnginePathIn(directory, paths[i], sizeof(paths[i]))) continue;
    memcpy(tried, paths[i], sizeof(tried));
    if (access(paths[i], F_OK) != 0) continue;
    return dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
  }
  return nullptr;
}

}  // namespace

Engine* Engine::Get(OsCalls* os) {
  if (!Configured()) return nullptr;
  char tried[kPathSize] = "";
  void* library = OpenEngine(tried);
  if (library == nullptr) {
    const char* why = dlerror();
    fprintf(stderr, "diskwire: cannot load the engine (%s): %s\n", tried,
            why != nullptr ? why : "no such file");
    if (!PassthroughOnError()) Stop();
    return nullptr;
  }
  auto* get = reinterpret_cast<Engine* (*)(OsCalls*)>(dlsym(library, kEntry));
  if (get == nullptr) {
    fprintf(stderr, "diskwire: %s has no %s: not diskwire's engine\n", tried,
            kEntry);
    if (!PassthroughOnError()) Stop();
    return nullptr;
  }
  // Its calls to libc by name pass straight through the hooks from now on.
  shim::AddEngineText(reinterpret_cast<const void*>(get));
  return get(os);
}

}  // namespace diskwire
