#include "storage/golden_records.h"

#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

Record Make(RecordType type, uint64_t offset, uint64_t ack, std::string payload,
            uint8_t direction = kClientToServer) {
  Record r;
  r.header.type = type;
  r.header.session_id = {0x0123456789abcdef, 0xfedcba9876543210};
  r.header.direction = direction;
  r.header.stream_offset = offset;
  r.header.ack_offset = ack;
  r.header.timestamp_ns = 1'764'000'000'000'000'000 + offset;
  r.payload = std::move(payload);
  return r;
}

}  // namespace

std::vector<GoldenFile> GoldenFiles() {
  std::vector<Record> records = {
      Make(RecordType::kHello, 0, 0, "hello"),
      Make(RecordType::kData, 0, 0, "diskwire\n"),
      Make(RecordType::kAck, 9, 42, ""),
      Make(RecordType::kFailover, 9, 42, "F", kServerToClient),
      Make(RecordType::kData, 9, 42, std::string("\0\x01\xff", 3)),
      Make(RecordType::kFin, 12, 42, ""),
  };
  std::string key;
  for (int i = 0; i < static_cast<int>(kMacKeySize); ++i) key.push_back(i);
  return {{"Plain", "golden_v1.seg", "", records},
          {"Authenticated", "golden_mac_v1.seg", key, records}};
}

std::string EncodeGolden(const GoldenFile& golden) {
  std::string out(kSegmentHeaderSize, '\0');
  EncodeSegmentHeader(1, golden.records.front().header.stream_offset,
                      out.data());
  for (size_t i = 0; i < golden.records.size(); ++i) {
    const Record& r = golden.records[i];
    AppendEncodedRecord(r.header, r.payload, i + 1 == golden.records.size(),
                        golden.key, &out);
  }
  return out;
}

}  // namespace diskwire::storage
