// File: core/log.h
// diskwire's log: one line per event, "diskwire[pid] LEVEL: message", to
// stderr, a file (DISKWIRE_LOG=/path) or nowhere. Lines are written with one
// write() each so that concurrent lines never interleave; a line that would
// pass the process's file size limit (RLIMIT_FSIZE) is dropped rather than
// written (SIGXFSZ would kill the process). Thread-safe.

#ifndef DISKWIRE_CORE_LOG_H_
#define DISKWIRE_CORE_LOG_H_

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/config.h"

namespace diskwire {

class Logger {
 public:
  // Opens the file sink when the config names one; falls back to stderr (saying
  // so) when it cannot be opened.
  explicit Logger(const Config& config);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  template <typename... Args>
  void Error(const Args&... args) {
    Emit(LogLevel::kError, absl::StrCat(args...));
  }
  template <typename... Args>
  void Warn(const Args&... args) {
    if (Enabled(LogLevel::kWarn)) Emit(LogLevel::kWarn, absl::StrCat(args...));
  }
  template <typename... Args>
  void Info(const Args&... args) {
    if (Enabled(LogLevel::kInfo)) Emit(LogLevel::kInfo, absl::StrCat(args...));
  }
  template <typename... Args>
  void Debug(const Args&... args) {
    if (Enabled(LogLevel::kDebug))
      Emit(LogLevel::kDebug, absl::StrCat(args...));
  }
  bool Enabled(LogLevel level) const { return fd_ >= 0 && level <= level_; }
  // The file the log writes to when it opened one (DISKWIRE_LOG=/path), else
  // -1: the engine's own fd, which an application's close must not take.
  int owned_fd() const { return own_fd_ ? fd_ : -1; }

 private:
  void Emit(LogLevel level, const std::string& message);

  LogSink sink_ = LogSink::kDefault;
  int fd_ = 2;
  bool own_fd_ = false;
  LogLevel level_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_LOG_H_
