#include "core/config_values.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "storage/lun_device.h"

namespace diskwire {
namespace {

constexpr size_t kKeyBytes = 32;  // storage::kMacKeySize.
constexpr size_t kMaxKeyBytes = 4096;
constexpr size_t kMaxNodeName = 64;

absl::Status Invalid(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

absl::Status BadValue(absl::string_view name, absl::string_view value,
                      absl::string_view want) {
  return Invalid(name,
                 absl::StrCat("bad value \"", value, "\" (want ", want, ")"));
}

// The errno of a failed file call on `path`, as a status naming the variable.
absl::Status FileError(absl::string_view name, absl::string_view path,
                       int err) {
  return absl::ErrnoToStatus(err,
                             absl::StrCat(name, ": cannot use \"", path, "\""));
}

std::string Keyword(absl::string_view value) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
}

bool AllDigits(absl::string_view s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// 65536 → "64K"; sizes that are not whole K, M or G print as bytes.
std::string FormatSize(uint64_t bytes) {
  if (bytes != 0 && bytes % (uint64_t{1} << 30) == 0) {
    return absl::StrCat(bytes >> 30, "G");
  }
  if (bytes != 0 && bytes % (uint64_t{1} << 20) == 0) {
    return absl::StrCat(bytes >> 20, "M");
  }
  if (bytes != 0 && bytes % (uint64_t{1} << 10) == 0) {
    return absl::StrCat(bytes >> 10, "K");
  }
  return absl::StrCat(bytes);
}

absl::Status RequireAbsolute(absl::string_view name, absl::string_view path) {
  if (path.empty()) return Invalid(name, "empty path");
  if (path.front() != '/') {
    return Invalid(name, absl::StrCat("\"", path,
                                      "\" is not an absolute path (the "
                                      "program may change directory)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> ParseMilliseconds(absl::string_view name,
                                          absl::string_view value, int64_t lo,
                                          int64_t hi) {
  absl::string_view v = absl::StripAsciiWhitespace(value);
  std::string want = absl::StrCat("milliseconds, ", lo, "..", hi);
  int64_t ms = 0;
  if (!AllDigits(v) || !absl::SimpleAtoi(v, &ms)) {
    return BadValue(name, value, want);
  }
  if (ms < lo || ms > hi) {
    return Invalid(name,
                   absl::StrCat(ms, " is out of range (want ", want, ")"));
  }
  return ms;
}

absl::StatusOr<uint64_t> ParseSize(absl::string_view name,
                                   absl::string_view value, uint64_t lo,
                                   uint64_t hi) {
  absl::string_view v = absl::StripAsciiWhitespace(value);
  const std::string want =
      absl::StrCat("bytes with an optional K, M or G suffix, ", FormatSize(lo),
                   "..", FormatSize(hi));
  int shift = 0;
  if (!v.empty()) {
    switch (absl::ascii_toupper(static_cast<unsigned char>(v.back()))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
    }
    if (shift != 0) v.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!AllDigits(v) || !absl::SimpleAtoi(v, &n)) {
    return BadValue(name, value, want);
  }
  if (n > (hi >> shift) || (n << shift) < lo) {
    return Invalid(name,
                   absl::StrCat("\"", value, "\" is out of range (want ",
                                FormatSize(lo), "..", FormatSize(hi), ")"));
  }
  return n << shift;
}

absl::StatusOr<Mode> ParseMode(absl::string_view name,
                               absl::string_view value) {
  std::string k = Keyword(value);
  if (k == "failover") return Mode::kFailover;
  if (k == "storage") return Mode::kStorage;
  return BadValue(name, value, "failover or storage");
}

absl::StatusOr<bool> ParseOnOff(absl::string_view name,
                                absl::string_view value) {
  std::string k = Keyword(value);
  if (k == "on" || k == "true" || k == "yes" || k == "1") return true;
  if (k == "off" || k == "false" || k == "no" || k == "0") return false;
  return BadValue(name, value, "on or off");
}

absl::Status ParsePortRange(absl::string_view name, absl::string_view value,
                            uint16_t* lo, uint16_t* hi) {
  std::string k = Keyword(value);
  std::pair<std::string, std::string> parts = absl::StrSplit(k, '-');
  if (parts.second.empty() && k.find('-') == std::string::npos) {
    parts.second = parts.first;
  }
  uint32_t a = 0, b = 0;
  if (!AllDigits(parts.first) || !AllDigits(parts.second) ||
      !absl::SimpleAtoi(parts.first, &a) ||
      !absl::SimpleAtoi(parts.second, &b) || a > 65535 || b > 65535 || a > b ||
      (a == 0 && b != 0)) {
    return BadValue(name, value, "0, a port, or LO-HI ports in 1..65535");
  }
  *lo = static_cast<uint16_t>(a);
  *hi = static_cast<uint16_t>(b);
  return absl::OkStatus();
}

absl::Status ParseDurability(absl::string_view name, absl::string_view value,
                             Durability* durability, int64_t* interval_ms) {
  std::string k = Keyword(value);
  if (k == "none") {
    *durability = Durability::kNone;
  } else if (k == "batch") {
    *durability = Durability::kBatch;
  } else if (k == "interval") {
    *durability = Durability::kInterval;
  } else if (absl::StartsWith(k, "interval:")) {
    absl::string_view ms_text = absl::string_view(k).substr(9);
    int64_t ms = 0;
    if (!AllDigits(ms_text) || !absl::SimpleAtoi(ms_text, &ms) || ms < 1 ||
        ms > 60000) {
      return Invalid(name,
                     absl::StrCat("bad interval \"", ms_text, "\" in \"", value,
                                  "\" (want milliseconds, "
                                  "1..60000)"));
    }
    *durability = Durability::kInterval;
    *interval_ms = ms;
  } else {
    return BadValue(name, value, "none, batch or interval[:MS]");
  }
  return absl::OkStatus();
}

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name,
                                       absl::string_view value) {
  std::string k = Keyword(value);
  if (k == "error") return LogLevel::kError;
  if (k == "warn" || k == "warning") return LogLevel::kWarn;
  if (k == "info") return LogLevel::kInfo;
  if (k == "debug") return LogLevel::kDebug;
  return BadValue(name, value, "error, warn, info or debug");
}

absl::Status ParseLog(absl::string_view name, absl::string_view value,
                      LogSink* sink, std::string* path) {
  std::string k = Keyword(value);
  if (k == "stderr") {
    *sink = LogSink::kStderr;
    return absl::OkStatus();
  }
  if (k == "off") {
    *sink = LogSink::kOff;
    return absl::OkStatus();
  }
  if (k == "syslog") {
    *sink = LogSink::kSyslog;
    return absl::OkStatus();
  }
  if (value.empty() || value.front() != '/') {
    return BadValue(name, value,
                    "stderr, syslog, off or an absolute file path");
  }
  if (value.back() == '/') {
    return Invalid(name, absl::StrCat("\"", value, "\" names a directory"));
  }
  size_t slash = value.rfind('/');
  std::string dir(slash == 0 ? absl::string_view("/") : value.substr(0, slash));
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return FileError(name, dir, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Invalid(name, absl::StrCat("\"", dir, "\" is not a directory"));
  }
  std::string file(value);
  if (stat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Invalid(name, absl::StrCat("\"", value, "\" is a directory"));
  }
  *sink = LogSink::kFile;
  *path = std::move(file);
  return absl::OkStatus();
}

absl::StatusOr<bool> ParseOnError(absl::string_view name,
                                  absl::string_view value) {
  std::string k = Keyword(value);
  if (k == "fail") return false;
  if (k == "passthrough") return true;
  return BadValue(name, value, "fail or passthrough");
}

absl::StatusOr<std::string> ParseVolumePath(absl::string_view name,
                                            absl::string_view value) {
  DW_RETURN_IF_ERROR(RequireAbsolute(name, value));
  std::string path(value);
  // Names inside the volume add up to ~200 characters (a channel, a segment,
  // a temporary name): the whole must stay below PATH_MAX.
  constexpr size_t kLongestInside = 256;
  if (path.size() + kLongestInside >= PATH_MAX) {
    return Invalid(name, absl::StrCat("the path is ", path.size(),
                                      " characters long; paths inside the "
                                      "volume would pass PATH_MAX (",
                                      PATH_MAX, "): use a shorter one"));
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return FileError(name, path, errno);
  // A block device (a SAN LUN) or an image file `diskwire format` laid out
  // is a LUN volume; whether it is formatted is checked when it is opened.
  if (S_ISBLK(st.st_mode) || storage::LooksLikeLun(path)) return path;
  if (S_ISREG(st.st_mode)) {
    return Invalid(name, absl::StrCat("\"", path,
                                      "\" is a regular file that is not a "
                                      "diskwire volume (lay one on it with "
                                      "diskwire format, or give a directory)"));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Invalid(name, absl::StrCat("\"", path, "\" is not a directory"));
  }
  return path;
}

absl::StatusOr<std::string> ReadKeyFile(absl::string_view name,
                                        absl::string_view path) {
  DW_RETURN_IF_ERROR(RequireAbsolute(name, path));
  std::string p(path);
  // O_NONBLOCK: opening a FIFO (or a device) must not block the program;
  // anything but a regular file is refused right after.
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return FileError(name, path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Invalid(name, absl::StrCat("\"", path, "\" is not a regular file"));
  }
  std::string key(kMaxKeyBytes + 1, '\0');
  size_t got = 0;
  while (got < key.size()) {
    ssize_t n = read(fd, key.data() + got, key.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return FileError(name, path, err);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  key.resize(got);
  // The same rule as storage::LoadMacKeyFile: 32 raw bytes, or 64 hex digits
  // optionally followed by blanks (a line made with `openssl rand -hex 32`).
  if (got == kKeyBytes) return key;
  absl::string_view hex = absl::StripTrailingAsciiWhitespace(key);
  bool all_hex = std::all_of(hex.begin(), hex.end(), [](char c) {
    return absl::ascii_isxdigit(static_cast<unsigned char>(c));
  });
  if (hex.size() == 2 * kKeyBytes && all_hex) {
    return absl::HexStringToBytes(hex);
  }
  return Invalid(
      name,
      absl::StrCat("\"", path, "\" holds ",
                   got > kMaxKeyBytes ? "more than 4096" : absl::StrCat(got),
                   " bytes; a key is 32 raw bytes or 64 hex digits "
                   "(make one with: head -c 32 /dev/urandom > FILE)"));
}

std::optional<std::string> KeyFileWarning(absl::string_view name,
                                          absl::string_view path) {
  struct stat st;
  if (stat(std::string(path).c_str(), &st) != 0 ||
      (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) {
    return std::nullopt;
  }
  return absl::StrCat(name, ": \"", path, "\" is readable by others (mode ",
                      absl::StrFormat("%04o", st.st_mode & 07777),
                      "): whoever reads it can forge records; chmod 600 it");
}

absl::StatusOr<std::string> ParseNodeName(absl::string_view name,
                                          absl::string_view value) {
  if (value.empty() || value.size() > kMaxNodeName) {
    return BadValue(name, value, "1 to 64 of A-Z a-z 0-9 . _ -");
  }
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return BadValue(name, value, "1 to 64 of A-Z a-z 0-9 . _ -");
    }
  }
  if (value.front() == '.') {
    // Names starting with "." are reserved on the volume (temporary files).
    return BadValue(name, value, "a name that does not start with \".\"");
  }
  return std::string(value);
}

absl::StatusOr<std::string> DefaultNodeName() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) {
    return absl::ErrnoToStatus(
        errno, "DISKWIRE_NODE: not set, and gethostname failed");
  }
  absl::StatusOr<std::string> node = ParseNodeName("DISKWIRE_NODE", host);
  if (!node.ok()) {
    return Invalid("DISKWIRE_NODE",
                   absl::StrCat("not set, and the host name \"", host,
                                "\" is not a valid node name; set it"));
  }
  return node;
}

const char* ModeName(Mode mode) {
  return mode == Mode::kStorage ? "storage" : "failover";
}

std::string DurabilityName(Durability durability, int64_t interval_ms) {
  switch (durability) {
    case Durability::kNone:
      return "none";
    case Durability::kBatch:
      return "batch";
    case Durability::kInterval:
      return absl::StrCat("interval:", interval_ms);
  }
  return "none";
}

const char* LogSinkName(LogSink sink) {
  switch (sink) {
    case LogSink::kDefault:
      return "default";
    case LogSink::kStderr:
      return "stderr";
    case LogSink::kSyslog:
      return "syslog";
    case LogSink::kFile:
      return "file";
    case LogSink::kOff:
      return "off";
  }
  return "stderr";
}

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

}  // namespace diskwire
