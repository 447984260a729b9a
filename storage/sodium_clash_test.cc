// A program that defines libsodium's functions itself (its own copy of
// another version, linked statically, or a function of its own under the same
// name) keeps them, and diskwire's MACs stay the ones docs/FORMAT.md and the
// golden files say: the engine lives in the program's process, and would
// otherwise call the program's definitions.

#include <sodium.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>

#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "storage/golden_records.h"
#include "storage/record_codec.h"

namespace {
std::atomic<int> g_program_calls{0};
}  // namespace

// The program's own definitions: wrong on purpose, and counted.
extern "C" {
int sodium_init(void) {
  ++g_program_calls;
  return 0;
}
int crypto_generichash(unsigned char* out, size_t outlen, const unsigned char*,
                       unsigned long long, const unsigned char*, size_t) {
  ++g_program_calls;
  for (size_t i = 0; i < outlen; ++i) out[i] = 0xAA;
  return 0;
}
int crypto_generichash_init(crypto_generichash_state*, const unsigned char*,
                            const size_t, const size_t) {
  ++g_program_calls;
  return 0;
}
int crypto_generichash_update(crypto_generichash_state*, const unsigned char*,
                              unsigned long long) {
  ++g_program_calls;
  return 0;
}
int crypto_generichash_final(crypto_generichash_state*, unsigned char* out,
                             const size_t outlen) {
  ++g_program_calls;
  for (size_t i = 0; i < outlen; ++i) out[i] = 0xAA;
  return 0;
}
// "Always equal": used by diskwire, it would accept any MAC.
int sodium_memcmp(const void* const, const void* const, size_t) {
  ++g_program_calls;
  return 0;
}
}

namespace diskwire::storage {
namespace {

const GoldenFile& MacGolden() {
  static const GoldenFile golden = [] {
    for (const GoldenFile& g : GoldenFiles()) {
      if (!g.key.empty()) return g;
    }
    return GoldenFile{};
  }();
  return golden;
}

TEST(SodiumClashTest, MacsAreLibsodiumsWhateverTheProgramDefines) {
  const GoldenFile& golden = MacGolden();
  ASSERT_FALSE(golden.key.empty()) << "no golden file with a MAC";
  std::ifstream in("testdata/" + golden.file_name, std::ios::binary);
  ASSERT_TRUE(in) << "missing testdata/" << golden.file_name;
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_TRUE(EncodeGolden(golden) == file.str())
      << "the MACs were not libsodium's BLAKE2b";
  EXPECT_EQ(g_program_calls.load(), 0)
      << "diskwire called the program's libsodium functions";
}

TEST(SodiumClashTest, AForgedMacIsRejectedWhateverTheProgramDefines) {
  const GoldenFile& golden = MacGolden();
  ASSERT_FALSE(golden.key.empty());
  RecordHeader h;
  h.type = RecordType::kData;
  h.session_id = {1, 2};
  h.stream_offset = 0;
  std::string bytes;
  AppendEncodedRecord(h, "payload", /*commit=*/true, golden.key, &bytes);
  DecodedRecord rec;
  ASSERT_EQ(DecodeRecord(bytes, golden.key, &rec).kind, DecodeResult::kRecord);
  // Another key's MAC, with a checksum that matches it: only the MAC check
  // can refuse it.
  std::string forged;
  AppendEncodedRecord(h, "payload", /*commit=*/true,
                      std::string(golden.key.size(), 'z'), &forged);
  EXPECT_NE(DecodeRecord(forged, golden.key, &rec).kind, DecodeResult::kRecord);
  EXPECT_EQ(g_program_calls.load(), 0);
}

}  // namespace
}  // namespace diskwire::storage
