// Runs the fuzz entry point over testdata/record_corpus, and over mutations
// of it, as a plain test.

#include "storage/record_decoder_fuzz.h"

#include <filesystem>
#include <random>

#include "gtest/gtest.h"
#include "storage/test_util.h"

namespace diskwire::storage {
namespace {

std::vector<std::string> Corpus() {
  std::vector<std::string> inputs;
  for (const auto& e :
       std::filesystem::directory_iterator("testdata/record_corpus")) {
    inputs.push_back(ReadFileBytes(e.path()));
  }
  return inputs;
}

void Decode(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()),
                         input.size());
}

TEST(RecordDecoderFuzz, SeedCorpusDecodesWithoutBreakingInvariants) {
  const std::vector<std::string> corpus = Corpus();
  ASSERT_GE(corpus.size(), 10u);
  for (const std::string& input : corpus) Decode(input);
}

TEST(RecordDecoderFuzz, RandomMutationsOfTheCorpus) {
  std::mt19937 rng(42);
  for (const std::string& seed : Corpus()) {
    for (int i = 0; i < 200 && !seed.empty(); ++i) {
      std::string m = seed;
      const int edits = 1 + rng() % 4;
      for (int e = 0; e < edits; ++e)
        m[rng() % m.size()] = static_cast<char>(rng());
      m.resize(rng() % (m.size() + 1));
      Decode(m);
    }
  }
}

}  // namespace
}  // namespace diskwire::storage
