#include "storage/mirror_requests.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/lun_device.h"
#include "storage/mirror_mailbox.h"
#include "storage/volume_open.h"

namespace diskwire::storage {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(20);

absl::StatusOr<std::string> RequestByFile(const std::string& from,
                                          const std::string& id,
                                          absl::Duration timeout) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(from, ec)) {
    return absl::NotFoundError(
        absl::StrCat(from, " is neither a volume directory nor a LUN"));
  }
  DW_RETURN_IF_ERROR(CheckVolume(from));
  const fs::path request = fs::path(from) / kMirrorRequestsDir / id;
  const fs::path done = fs::path(from) / kMirrorDoneDir / id;
  fs::create_directories(request.parent_path(), ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), request.parent_path().string());
  }
  if (fs::exists(request) || fs::exists(done)) {
    return absl::AlreadyExistsError(
        absl::StrCat("a request ", id, " is already pending in ", from));
  }
  std::ofstream(request).close();
  if (!fs::exists(request)) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", request.string()));
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (fs::exists(done)) {
      // Written by temp file + rename: whole once it is there.
      std::ifstream in(done);
      std::stringstream text;
      text << in.rdbuf();
      fs::remove(done, ec);
      return text.str();
    }
    absl::SleepFor(kPoll);
  }
  fs::remove(request, ec);
  return absl::DeadlineExceededError(absl::StrCat(
      "no mirror answered request ", id, " in ", absl::FormatDuration(timeout),
      " (is `diskwire mirror --on-request --from ", from, "` running?)"));
}

absl::StatusOr<std::string> RequestByInbox(const std::string& from,
                                           const std::string& name,
                                           const std::string& id,
                                           absl::Duration timeout,
                                           const std::string& mac_key) {
  DirVolumeOptions o;
  o.mac_key = mac_key;
  DW_ASSIGN_OR_RETURN(std::unique_ptr<Volume> volume, OpenVolume(from, o));
  DW_RETURN_IF_ERROR(volume->PostToInbox(MirrorRequestInbox(name), id, ""));
  const std::string answers = MirrorAnswerInbox(name, id);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    DW_ASSIGN_OR_RETURN(InboxListing in, volume->TakeInbox(answers));
    for (const InboxMessage& m : in.messages) {
      if (m.name == "done") return m.payload;
    }
    DW_RETURN_IF_ERROR(volume->KeepAlive());
    absl::SleepFor(kPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no mirror answered request ", id, " in ", absl::FormatDuration(timeout),
      " (is `diskwire mirror --on-request --name ", name, " --from ", from,
      "` running?)"));
}

}  // namespace

std::string MirrorRequestInbox(const std::string& name) {
  return absl::StrCat(kMirrorControlPrefix, name);
}

std::string MirrorAnswerInbox(const std::string& name, const std::string& id) {
  return absl::StrCat(kMirrorControlPrefix, name, ".", id);
}

absl::StatusOr<std::string> RequestMirrorCopy(const std::string& from,
                                              const std::string& name,
                                              const std::string& id,
                                              absl::Duration timeout,
                                              const std::string& mac_key) {
  DW_RETURN_IF_ERROR(ValidateChannelName(name, "mirror name"));
  DW_RETURN_IF_ERROR(ValidateChannelName(id, "copy request name"));
  if (!LooksLikeLun(from)) return RequestByFile(from, id, timeout);
  return RequestByInbox(from, name, id, timeout, mac_key);
}

}  // namespace diskwire::storage
