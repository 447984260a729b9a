#include "storage/record_decoder_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "record decoder invariant broken: %s\n", what);
    std::abort();
  }
}

void DecodeAll(absl::string_view data, absl::string_view key) {
  std::vector<DecodedRecord> records;
  const ScanResult scan = ScanRecords(data, key, SIZE_MAX, &records);
  Check(scan.committed_end <= scan.scanned_end, "committed past scanned");
  Check(scan.scanned_end <= data.size(), "scanned past the input");
  Check(scan.stop != DecodeResult::kInvalid || !scan.error.ok(),
        "invalid without an error");
  size_t pos = 0;
  for (const DecodedRecord& r : records) {
    std::string again;
    AppendEncodedRecord(r.header, r.payload, r.commit, key, &again);
    Check(again == data.substr(pos, r.size), "re-encoding differs");
    pos += r.size;
  }
}

}  // namespace
}  // namespace diskwire::storage

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace diskwire::storage;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  DecodeAll(bytes, "");
  DecodeAll(bytes, std::string(kMacKeySize, '\x01'));
  uint64_t index, first;
  if (DecodeSegmentHeader(bytes, &index, &first).ok()) {
    DecodeAll(bytes.substr(kSegmentHeaderSize), "");
  }
  return 0;
}
