// File: core/config_values.h
// Parsers for the value types of DISKWIRE_* variables (core/config.h). Each
// takes the variable's name and returns InvalidArgument (or, for file checks,
// the errno status) with a one-line message that starts with that name and
// quotes the bad token, e.g.
//   DISKWIRE_DETECT_MS: bad value "2s" (want milliseconds, 50..600000)
// Keywords are case-insensitive and surrounding whitespace is ignored, except
// in paths, which are taken as given.
//
// Thread safety: plain functions; safe from any thread.

#ifndef DISKWIRE_CORE_CONFIG_VALUES_H_
#define DISKWIRE_CORE_CONFIG_VALUES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config.h"

namespace diskwire {

// A whole number of milliseconds in [lo, hi].
absl::StatusOr<int64_t> ParseMilliseconds(absl::string_view name,
                                          absl::string_view value, int64_t lo,
                                          int64_t hi);

// Bytes, with an optional binary suffix K, M or G, in [lo, hi].
absl::StatusOr<uint64_t> ParseSize(absl::string_view name,
                                   absl::string_view value, uint64_t lo,
                                   uint64_t hi);

absl::StatusOr<Mode> ParseMode(absl::string_view name, absl::string_view value);

// on | off (also true/false, yes/no, 1/0).
absl::StatusOr<bool> ParseOnOff(absl::string_view name,
                                absl::string_view value);

// 0, PORT or LO-HI with 1 <= LO <= HI <= 65535; 0 gives lo = hi = 0.
absl::Status ParsePortRange(absl::string_view name, absl::string_view value,
                            uint16_t* lo, uint16_t* hi);

// none | batch | interval[:MS]; `*interval_ms` is set only for interval:MS.
absl::Status ParseDurability(absl::string_view name, absl::string_view value,
                             Durability* durability, int64_t* interval_ms);

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name,
                                       absl::string_view value);

// stderr | off | an absolute path whose directory exists.
absl::Status ParseLog(absl::string_view name, absl::string_view value,
                      LogSink* sink, std::string* path);

// fail → false, passthrough → true.
absl::StatusOr<bool> ParseOnError(absl::string_view name,
                                  absl::string_view value);

// An absolute path to an existing directory, block device or regular file.
absl::StatusOr<std::string> ParseVolumePath(absl::string_view name,
                                            absl::string_view value);

// Reads an absolute path to a readable regular file holding 32 raw bytes, or
// 64 hex digits optionally followed by blanks, and returns the 32-byte key.
absl::StatusOr<std::string> ReadKeyFile(absl::string_view name,
                                        absl::string_view path);

// 1 to 64 characters of [A-Za-z0-9._-].
// A warning for a key file that its group or others may read or write;
// nullopt when only its owner can.
std::optional<std::string> KeyFileWarning(absl::string_view name,
                                          absl::string_view path);
absl::StatusOr<std::string> ParseNodeName(absl::string_view name,
                                          absl::string_view value);
// The host name, checked as a node name (the error names DISKWIRE_NODE).
absl::StatusOr<std::string> DefaultNodeName();

// The keywords, as the parsers above accept them.
const char* ModeName(Mode mode);
std::string DurabilityName(Durability durability, int64_t interval_ms);
const char* LogSinkName(LogSink sink);
const char* LogLevelName(LogLevel level);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_CONFIG_VALUES_H_
