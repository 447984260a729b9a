// main() of //storage:record_decoder_fuzz when built without libFuzzer:
//   record_decoder_fuzz FILE...          replays inputs (a crash is a bug)
//   record_decoder_fuzz --write-seeds DIR  writes the seed corpus
// With clang -fsanitize=fuzzer the libFuzzer main is used instead (see
// docs/FORMAT.md, "Fuzzing").

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "storage/golden_records.h"
#include "storage/record_codec.h"
#include "storage/record_decoder_fuzz.h"

namespace diskwire::storage {
namespace {

int WriteSeeds(const std::string& dir) {
  int n = 0;
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    ++n;
  };
  for (const GoldenFile& g : GoldenFiles()) {
    const std::string seg = EncodeGolden(g);
    write(g.test_name + "-segment", seg);
    write(g.test_name + "-records", seg.substr(kSegmentHeaderSize));
    write(g.test_name + "-torn", seg.substr(0, seg.size() - 7));
    std::string flipped = seg;
    flipped[kSegmentHeaderSize + kRecordHeaderSize + 2] ^= 0x20;
    write(g.test_name + "-flipped", flipped);
    for (const Record& r : g.records) {
      std::string one;
      AppendEncodedRecord(r.header, r.payload, true, g.key, &one);
      write(g.test_name + "-type" +
                std::to_string(static_cast<int>(r.header.type)),
            one);
    }
  }
  write("zeros", std::string(128, '\0'));
  write("empty", "");
  std::printf("wrote %d seeds to %s\n", n, dir.c_str());
  return 0;
}

}  // namespace
}  // namespace diskwire::storage

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--write-seeds") == 0) {
    return diskwire::storage::WriteSeeds(argv[2]);
  }
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    std::stringstream s;
    s << in.rdbuf();
    const std::string data = s.str();
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()),
                           data.size());
  }
  std::printf("replayed %d inputs\n", argc - 1);
  return 0;
}
