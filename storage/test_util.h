// File: storage/test_util.h
// Test helpers: a scratch directory removed at destruction, record builders,
// and raw file access for corrupting segments. Test-only.

#ifndef DISKWIRE_STORAGE_TEST_UTIL_H_
#define DISKWIRE_STORAGE_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "storage/record.h"

namespace diskwire::storage {

class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/dw-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline Record DataRecord(uint64_t offset, std::string payload,
                         RecordType type = RecordType::kData) {
  Record r;
  r.header.type = type;
  r.header.session_id = {1, 2};
  r.header.stream_offset = offset;
  r.header.timestamp_ns = 1;
  r.payload = std::move(payload);
  return r;
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFileBytes(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

inline void AppendFileBytes(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::app) << data;
}

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_TEST_UTIL_H_
