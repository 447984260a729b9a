#include "storage/dir_layout.h"

#include <algorithm>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace diskwire::storage {
namespace {

absl::Status ValidateName(absl::string_view name, absl::string_view what,
                          bool allow_upper) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be 1..128 characters, got ", name.size()));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " \"", absl::CHexEscape(name), "\" must not start with '.'"));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' ||
                    (allow_upper && c >= 'A' && c <= 'Z');
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"", absl::CHexEscape(name), "\" has a character outside ",
          allow_upper ? "[A-Za-z0-9._-]" : "[a-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateChannelName(absl::string_view name,
                                 absl::string_view what) {
  return ValidateName(name, what, /*allow_upper=*/false);
}

absl::Status ValidateProcessId(absl::string_view id) {
  return ValidateName(id, "process id", /*allow_upper=*/true);
}

std::string SegmentFileName(uint64_t index) {
  return absl::StrFormat("%016x.seg", index);
}

std::optional<uint64_t> ParseSegmentFileName(absl::string_view name) {
  if (name.size() != 20 || !absl::EndsWith(name, ".seg")) return std::nullopt;
  uint64_t v = 0;
  for (char c : name.substr(0, 16)) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = v * 16 + d;
  }
  if (v == 0) return std::nullopt;  // indexes start at 1
  return v;
}

std::vector<uint64_t> SegmentIndexes(const std::vector<std::string>& names,
                                     std::vector<std::string>* foreign) {
  std::vector<uint64_t> out;
  for (const std::string& n : names) {
    if (std::optional<uint64_t> i = ParseSegmentFileName(n)) {
      out.push_back(*i);
    } else if (n != kLockFile && !absl::StartsWith(n, ".") &&
               foreign != nullptr) {
      foreign->push_back(n);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ScanResult ScanRecords(absl::string_view data, absl::string_view mac_key,
                       size_t stop_after, std::vector<DecodedRecord>* records) {
  // Whether the record at the start of `rest` (a sane header) ends at the
  // end of `rest`.
  auto rec_size_fits = [](absl::string_view rest) {
    const uint32_t length = absl::little_endian::Load32(rest.data() + 8);
    return EncodedRecordSize(length, (rest[6] & kFlagMac) != 0) == rest.size();
  };
  records->clear();
  ScanResult r;
  size_t pos = 0;
  while (pos < data.size()) {
    if (r.committed_end >= stop_after && r.committed_end == pos) break;
    DecodedRecord rec;
    const DecodeResult d = DecodeRecord(data.substr(pos), mac_key, &rec);
    if (d.kind == DecodeResult::kRecord) {
      records->push_back(rec);
      pos += rec.size;
      if (rec.commit) {
        r.committed_end = pos;
        r.committed_records = records->size();
      }
      continue;
    }
    r.stop = d.kind;
    if (d.kind == DecodeResult::kInvalid) {
      const absl::string_view rest = data.substr(pos);
      if (std::all_of(rest.begin(), rest.end(),
                      [](char c) { return c == '\0'; })) {
        r.stop = DecodeResult::kIncomplete;  // preallocated or torn zeros
      } else {
        r.error = d.error;
        // A record that failed only its checksum is "last" when nothing
        // follows it (it may be a write in flight on a network filesystem).
        r.invalid_is_last = d.bad_checksum && rec_size_fits(rest);
      }
    }
    break;
  }
  r.scanned_end = pos;
  return r;
}

}  // namespace diskwire::storage
