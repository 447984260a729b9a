#include "storage/record_codec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "storage/blake2b.h"

namespace diskwire::storage {
namespace {

using absl::little_endian::Load16;
using absl::little_endian::Load32;
using absl::little_endian::Load64;
using absl::little_endian::Store16;
using absl::little_endian::Store32;
using absl::little_endian::Store64;

uint64_t Checksum(const char* header, absl::string_view payload,
                  const char* mac) {
  uint64_t c = XXH3_64bits(header, kChecksumOffset);
  c = XXH3_64bits_withSeed(payload.data(), payload.size(), c);
  if (mac != nullptr) c = XXH3_64bits_withSeed(mac, kMacSize, c);
  return c;
}

void ComputeMac(const char* header, absl::string_view payload,
                absl::string_view key, unsigned char* mac) {
  Blake2b hash(key, kMacSize);
  hash.Update(header, kChecksumOffset);
  hash.Update(payload.data(), payload.size());
  hash.Final(mac);
}

DecodeResult WithKind(DecodeResult::Kind kind) {
  DecodeResult r;
  r.kind = kind;
  return r;
}

DecodeResult Invalid(absl::Status error) {
  DecodeResult r;
  r.kind = DecodeResult::kInvalid;
  r.error = std::move(error);
  return r;
}

}  // namespace

void EncodeRecord(const RecordHeader& h, absl::string_view payload, bool commit,
                  absl::string_view mac_key, char* out, char* mac_out) {
  const bool with_mac = !mac_key.empty();
  std::memcpy(out, kRecordMagic, 4);
  out[4] = static_cast<char>(kFormatVersion);
  out[5] = static_cast<char>(h.type);
  out[6] =
      static_cast<char>((with_mac ? kFlagMac : 0) | (commit ? kFlagCommit : 0));
  out[7] = static_cast<char>(h.direction);
  Store32(out + 8, static_cast<uint32_t>(payload.size()));
  Store32(out + 12, 0);
  Store64(out + 16, h.session_id.high);
  Store64(out + 24, h.session_id.low);
  Store64(out + 32, h.stream_offset);
  Store64(out + 40, h.ack_offset);
  Store64(out + 48, h.timestamp_ns);
  if (with_mac) {
    ComputeMac(out, payload, mac_key,
               reinterpret_cast<unsigned char*>(mac_out));
  }
  Store64(out + kChecksumOffset,
          Checksum(out, payload, with_mac ? mac_out : nullptr));
}

void AppendEncodedRecord(const RecordHeader& header, absl::string_view payload,
                         bool commit, absl::string_view mac_key,
                         std::string* out) {
  const size_t start = out->size();
  const bool with_mac = !mac_key.empty();
  out->resize(start + EncodedRecordSize(payload.size(), with_mac));
  char* p = out->data() + start;
  std::memcpy(p + kRecordHeaderSize, payload.data(), payload.size());
  EncodeRecord(header, payload, commit, mac_key, p,
               p + kRecordHeaderSize + payload.size());
}

DecodeResult DecodeRecord(absl::string_view data, absl::string_view mac_key,
                          DecodedRecord* out) {
  const size_t magic_have = std::min<size_t>(data.size(), 4);
  if (std::memcmp(data.data(), kRecordMagic, magic_have) != 0) {
    return Invalid(absl::DataLossError("bad record magic"));
  }
  if (data.size() < kRecordHeaderSize)
    return WithKind(DecodeResult::kIncomplete);
  const char* p = data.data();
  const uint8_t version = static_cast<uint8_t>(p[4]);
  if (version != kFormatVersion) {
    return Invalid(absl::FailedPreconditionError(
        absl::StrCat("unsupported record format version ", version,
                     " (this build reads version ", kFormatVersion, ")")));
  }
  const uint8_t type = static_cast<uint8_t>(p[5]);
  const uint8_t flags = static_cast<uint8_t>(p[6]);
  const uint8_t direction = static_cast<uint8_t>(p[7]);
  const uint32_t length = Load32(p + 8);
  if (type == 0 || type > kMaxRecordType) {
    return Invalid(absl::DataLossError(absl::StrCat("bad record type ", type)));
  }
  if ((flags & ~kKnownFlags) != 0 || direction > 1 || Load32(p + 12) != 0) {
    return Invalid(absl::DataLossError("bad record flags/direction/reserved"));
  }
  if (length > kMaxPayloadSize) {
    return Invalid(absl::DataLossError(
        absl::StrCat("record length ", length, " too big")));
  }
  const bool with_mac = (flags & kFlagMac) != 0;
  const size_t size = EncodedRecordSize(length, with_mac);
  if (data.size() < size) return WithKind(DecodeResult::kIncomplete);
  const absl::string_view payload(p + kRecordHeaderSize, length);
  const char* mac = with_mac ? p + kRecordHeaderSize + length : nullptr;
  if (Checksum(p, payload, mac) != Load64(p + kChecksumOffset)) {
    DecodeResult r = Invalid(absl::DataLossError("record checksum mismatch"));
    r.bad_checksum = true;
    return r;
  }
  if (!mac_key.empty()) {
    if (!with_mac) {
      return Invalid(absl::UnauthenticatedError(
          "record has no MAC but a key is configured"));
    }
    unsigned char expected[kMacSize];
    ComputeMac(p, payload, mac_key, expected);
    if (!ConstantTimeEquals(expected, mac, kMacSize)) {
      return Invalid(absl::UnauthenticatedError("record MAC mismatch"));
    }
  } else if (with_mac) {
    return Invalid(absl::FailedPreconditionError(
        "record is authenticated (MAC) but no key is configured"));
  }
  RecordHeader& h = out->header;
  h.type = static_cast<RecordType>(type);
  h.flags = 0;
  h.direction = direction;
  h.session_id.high = Load64(p + 16);
  h.session_id.low = Load64(p + 24);
  h.stream_offset = Load64(p + 32);
  h.ack_offset = Load64(p + 40);
  h.timestamp_ns = Load64(p + 48);
  out->payload = payload;
  out->commit = (flags & kFlagCommit) != 0;
  out->size = size;
  return WithKind(DecodeResult::kRecord);
}

void EncodeSegmentHeader(uint64_t index, uint64_t first_stream_offset,
                         char* out) {
  std::memcpy(out, kSegmentMagic, 4);
  Store16(out + 4, kFormatVersion);
  Store16(out + 6, 0);
  Store64(out + 8, index);
  Store64(out + 16, first_stream_offset);
  Store64(out + 24, XXH3_64bits(out, 24));
}

absl::Status DecodeSegmentHeader(absl::string_view data, uint64_t* index,
                                 uint64_t* first_stream_offset) {
  if (data.size() < kSegmentHeaderSize ||
      std::memcmp(data.data(), kSegmentMagic, 4) != 0) {
    return absl::DataLossError("not a diskwire segment (bad header magic)");
  }
  const char* p = data.data();
  if (Load16(p + 4) != kFormatVersion || Load16(p + 6) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("unsupported segment format version ", Load16(p + 4),
                     " (this build reads version ", kFormatVersion, ")"));
  }
  if (XXH3_64bits(p, 24) != Load64(p + 24)) {
    return absl::DataLossError("segment header checksum mismatch");
  }
  *index = Load64(p + 8);
  *first_stream_offset = Load64(p + 16);
  return absl::OkStatus();
}

}  // namespace diskwire::storage
