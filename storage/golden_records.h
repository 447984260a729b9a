// File: storage/golden_records.h
// The known records behind testdata/golden_*.seg, shared by the golden test
// and the fuzz seed corpus. Test-only.

#ifndef DISKWIRE_STORAGE_GOLDEN_RECORDS_H_
#define DISKWIRE_STORAGE_GOLDEN_RECORDS_H_

#include <ostream>
#include <string>
#include <vector>

#include "storage/record.h"

namespace diskwire::storage {

struct GoldenFile {
  std::string test_name;  // gtest parameter name
  std::string file_name;  // under testdata/
  std::string key;        // MAC key, empty for none
  std::vector<Record> records;
};

std::vector<GoldenFile> GoldenFiles();

inline void PrintTo(const GoldenFile& g, std::ostream* os) {
  *os << g.file_name;
}

// Segment header (index 1, first offset of the first record) followed by the
// records; the last record carries the commit flag.
std::string EncodeGolden(const GoldenFile& golden);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_GOLDEN_RECORDS_H_
