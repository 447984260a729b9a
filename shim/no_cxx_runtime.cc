// File: shim/no_cxx_runtime.cc
// The one piece of the C++ runtime libdiskwire.so still refers to: the sized
// operator delete that the deleting destructors of classes with virtual
// destructors (OsCalls) name. Nothing in the preload library deletes through
// them; defining it here (hidden, like every C++ symbol of the library) spares
// every process the load of libstdc++ (shim/BUILD.bazel, PRELOAD_COPTS).

#include <stdlib.h>

#include <cstddef>

void operator delete(void* p, std::size_t) noexcept { free(p); }
void operator delete(void* p) noexcept { free(p); }
