// File: core/private_fd_marks.h
// The engine's marks of the fds it holds for itself (Engine::IsPrivate), set
// by whoever opens one: a volume's channel writers and readers (through
// storage's FdObserver), the UDP relay's own fds. A private fd is out of the
// application's reach (close, close_range, dup2 onto it) and a forked child
// closes its copy (core/engine_fork.cc).

#ifndef DISKWIRE_CORE_PRIVATE_FD_MARKS_H_
#define DISKWIRE_CORE_PRIVATE_FD_MARKS_H_

#include <atomic>
#include <cstdint>

#include "storage/file_ops.h"

namespace diskwire {

class PrivateFdMarks final : public storage::FdObserver {
 public:
  // REQUIRES: `marks` has `count` entries and outlives this.
  PrivateFdMarks(std::atomic<uint8_t>* marks, int count)
      : marks_(marks), count_(count) {}

  void Opened(int fd) override { Set(fd, 1); }
  void Closing(int fd) override { Set(fd, 0); }

 private:
  void Set(int fd, uint8_t value) {
    if (fd >= 0 && fd < count_)
      marks_[fd].store(value, std::memory_order_release);
  }

  std::atomic<uint8_t>* const marks_;
  const int count_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_PRIVATE_FD_MARKS_H_
