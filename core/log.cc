#include "core/log.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "storage/file_ops.h"

namespace diskwire {
namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "ERROR";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kDebug:
      return "DEBUG";
  }
  return "?";
}

// Whether `n` more bytes fit in the regular file `fd` under the process's
// RLIMIT_FSIZE: a write past it kills the process with SIGXFSZ (sshd's
// sandboxed child sets the limit to 0). Another process appending in between
// can still pass it; the log is not worth a lock across processes.
bool FitsFileSizeLimit(int fd, size_t n) {
  rlimit lim;
  if (getrlimit(RLIMIT_FSIZE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return true;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return true;
  return static_cast<uint64_t>(st.st_size) + n <= lim.rlim_cur;
}

}  // namespace

Logger::Logger(const Config& config)
    : sink_(config.log_sink), level_(config.log_level) {
  if (config.log_sink == LogSink::kOff) {
    fd_ = -1;
  } else if (config.log_sink == LogSink::kFile) {
    auto fd = storage::FileOps::Default()->Open(
        config.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd.ok()) {
      fd_ = *fd;
      own_fd_ = true;
    } else {
      Emit(LogLevel::kWarn,
           absl::StrCat("DISKWIRE_LOG: cannot open ", config.log_path, " (",
                        fd.status().message(), "); logging to stderr"));
    }
  }
}

Logger::~Logger() {
  if (own_fd_) (void)storage::FileOps::Default()->Close(fd_);
}

void Logger::Emit(LogLevel level, const std::string& message) {
  if (fd_ < 0) return;
  if (sink_ == LogSink::kSyslog ||
      (sink_ == LogSink::kDefault && level > LogLevel::kWarn)) {
    // No openlog(): the application's own ident and options stay as they
    // are.
    syslog(LOG_DAEMON | (level == LogLevel::kError  ? LOG_ERR
                         : level == LogLevel::kWarn ? LOG_WARNING
                         : level == LogLevel::kInfo ? LOG_INFO
                                                    : LOG_DEBUG),
           "diskwire[%d] %s: %s", static_cast<int>(getpid()), LevelName(level),
           message.c_str());
    return;
  }
  std::string line = absl::StrCat("diskwire[", getpid(), "] ", LevelName(level),
                                  ": ", message, "\n");
  if (!FitsFileSizeLimit(fd_, line.size())) return;  // dropped, not fatal
  iovec iov{line.data(), line.size()};
  (void)storage::FileOps::Default()->WriteV(fd_, &iov, 1);
}

}  // namespace diskwire
