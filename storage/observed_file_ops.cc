// FileOps::Observed: a FileOps that tells an FdObserver of the descriptors it
// opens and closes, and hands every other call to the one it wraps.

#include <memory>
#include <string>

#include "storage/file_ops.h"
#include "storage/forwarding_file_ops.h"

namespace diskwire::storage {
namespace {

class ObservedFileOps final : public ForwardingFileOps {
 public:
  ObservedFileOps(FileOps* base, FdObserver* observer)
      : ForwardingFileOps(base), observer_(observer) {}

  absl::StatusOr<int> Open(const std::string& path, int flags,
                           mode_t mode) override {
    absl::StatusOr<int> fd = base()->Open(path, flags, mode);
    if (fd.ok()) observer_->Opened(*fd);
    return fd;
  }
  absl::Status Close(int fd) override {
    observer_->Closing(fd);
    return base()->Close(fd);
  }

 private:
  FdObserver* const observer_;
};

}  // namespace

std::unique_ptr<FileOps> FileOps::Observed(FileOps* base,
                                           FdObserver* observer) {
  return std::make_unique<ObservedFileOps>(base, observer);
}

}  // namespace diskwire::storage
