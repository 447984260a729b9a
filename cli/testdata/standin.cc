// A stand-in for libdiskwire.so in cli tests: when the loader preloads it,
// its constructor sets STANDIN_LOADED=1, which the child program prints.
#include <cstdlib>

__attribute__((constructor)) static void MarkLoaded() {
  setenv("STANDIN_LOADED", "1", 1);
}
