// File: storage/blake2b.h
// Keyed BLAKE2b (libsodium's crypto_generichash) and a constant-time compare,
// for record MACs (docs/FORMAT.md) and the resume handshake.
//
// libsodium is loaded for diskwire alone: dlopen'ed with RTLD_DEEPBIND, and
// called through the addresses dlsym gives for that copy. The engine lives
// inside the application's process, and a program that defines
// crypto_generichash itself, or links another libsodium statically, would
// otherwise supply the functions diskwire calls (and those libsodium calls
// inside itself). Neither side then sees the other's.
//
// Thread-safe: libsodium is loaded once, on first use.

#ifndef DISKWIRE_STORAGE_BLAKE2B_H_
#define DISKWIRE_STORAGE_BLAKE2B_H_

#include <sodium.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace diskwire::storage {

class Blake2b {
 public:
  // Loads libsodium if it is not loaded yet; the error says why it cannot be
  // (it is a run-time dependency: libsodium23). Without it a hash is all
  // zero bytes, which no verification accepts.
  static absl::Status Available();

  // A hash of `out_bytes` (16..64) keyed with `key` (empty, or at most 64
  // bytes), fed by Update().
  Blake2b(absl::string_view key, size_t out_bytes);
  void Update(const void* data, size_t size);
  // Writes the hash's `out_bytes` to `out`.
  void Final(unsigned char* out);

  // The hash of `data` in one call.
  static std::string Hash(absl::string_view key, absl::string_view data,
                          size_t out_bytes);

 private:
  crypto_generichash_state state_;
  size_t out_bytes_;
  bool ok_;
};

// Whether the `size` bytes at `a` and `b` are equal, in a time that does not
// depend on where they differ (sodium_memcmp).
bool ConstantTimeEquals(const void* a, const void* b, size_t size);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_BLAKE2B_H_
