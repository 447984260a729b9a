#include "storage/blake2b.h"

#include <dlfcn.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace diskwire::storage {
namespace {

// The library the build linked against (libsodium-dev's libsodium.so names
// it); the package depends on libsodium23.
constexpr char kSodiumSoname[] = "libsodium.so.23";

// The sanitizers' runtimes cannot follow RTLD_DEEPBIND (scripts/tsan).
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kPrivateScope = 0;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kPrivateScope = 0;
#else
constexpr int kPrivateScope = RTLD_DEEPBIND;
#endif
#else
constexpr int kPrivateScope = RTLD_DEEPBIND;
#endif

struct SodiumCalls {
  decltype(&::sodium_init) init = nullptr;
  decltype(&::crypto_generichash_init) hash_init = nullptr;
  decltype(&::crypto_generichash_update) hash_update = nullptr;
  decltype(&::crypto_generichash_final) hash_final = nullptr;
  decltype(&::sodium_memcmp) memcmp = nullptr;
  absl::Status status;
};

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* fn, absl::Status* status) {
  *fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (*fn == nullptr && status->ok()) {
    *status = absl::InternalError(
        absl::StrCat(kSodiumSoname, " has no ", name, ": ", dlerror()));
  }
  return *fn != nullptr;
}

SodiumCalls Load() {
  SodiumCalls c;
  void* lib = dlopen(kSodiumSoname, RTLD_NOW | RTLD_LOCAL | kPrivateScope);
  if (lib == nullptr) {
    c.status = absl::FailedPreconditionError(absl::StrCat(
        "cannot load ", kSodiumSoname, " (install libsodium23): ", dlerror()));
    return c;
  }
  bool all = Bind(lib, "sodium_init", &c.init, &c.status);
  all &= Bind(lib, "crypto_generichash_init", &c.hash_init, &c.status);
  all &= Bind(lib, "crypto_generichash_update", &c.hash_update, &c.status);
  all &= Bind(lib, "crypto_generichash_final", &c.hash_final, &c.status);
  all &= Bind(lib, "sodium_memcmp", &c.memcmp, &c.status);
  if (all && c.init() < 0) {
    c.status = absl::InternalError("sodium_init failed");
  }
  return c;
}

const SodiumCalls& Sodium() {
  static const SodiumCalls* const calls = new SodiumCalls(Load());
  return *calls;
}

}  // namespace

absl::Status Blake2b::Available() { return Sodium().status; }

Blake2b::Blake2b(absl::string_view key, size_t out_bytes)
    : out_bytes_(out_bytes), ok_(Sodium().status.ok()) {
  if (ok_) {
    ok_ = Sodium().hash_init(&state_,
                             reinterpret_cast<const unsigned char*>(key.data()),
                             key.size(), out_bytes) == 0;
  }
}

void Blake2b::Update(const void* data, size_t size) {
  if (ok_) {
    Sodium().hash_update(&state_, static_cast<const unsigned char*>(data),
                         size);
  }
}

void Blake2b::Final(unsigned char* out) {
  if (!ok_ || Sodium().hash_final(&state_, out, out_bytes_) != 0) {
    std::memset(out, 0, out_bytes_);
  }
}

std::string Blake2b::Hash(absl::string_view key, absl::string_view data,
                          size_t out_bytes) {
  Blake2b h(key, out_bytes);
  h.Update(data.data(), data.size());
  std::string out(out_bytes, '\0');
  h.Final(reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

bool ConstantTimeEquals(const void* a, const void* b, size_t size) {
  const SodiumCalls& s = Sodium();
  if (!s.status.ok()) {
    // Without libsodium every hash is zeros: refuse rather than compare them.
    return false;
  }
  return s.memcmp(a, b, size) == 0;
}

}  // namespace diskwire::storage
