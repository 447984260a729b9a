#include "storage/dir_volume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_channel.h"
#include "storage/dir_layout.h"
#include "storage/dir_mailbox.h"
#include "storage/dir_watcher.h"

namespace diskwire::storage {
namespace {

class DirVolume final : public Volume {
 public:
  explicit DirVolume(DirContext ctx) : ctx_(std::move(ctx)) {}

  absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenWriter(
      const std::string& channel, const WriterOptions& options) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    if (options.segment_bytes < kSegmentHeaderSize + kRecordHeaderSize) {
      return absl::InvalidArgumentError("segment_bytes too small");
    }
    return OpenDirChannelWriter(ctx_, channel, options);
  }

  absl::StatusOr<std::unique_ptr<ChannelReader>> OpenReader(
      const std::string& channel, uint64_t from_stream_offset) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    return NewDirChannelReader(ctx_, channel, from_stream_offset);
  }

  absl::Status RemoveChannel(const std::string& channel) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    const std::string dir = ctx_.ChannelDir(channel);
    absl::StatusOr<std::vector<std::string>> names = ctx_.ops->ListDir(dir);
    if (absl::IsNotFound(names.status())) return absl::OkStatus();
    DW_RETURN_IF_ERROR(names.status());
    // Hold the writer lock while deleting, so no writer is cut off.
    DW_ASSIGN_OR_RETURN(int lock_fd, ctx_.ops->Open(dir + "/" + kLockFile,
                                                    O_RDWR | O_CREAT, 0666));
    absl::Status s = ctx_.ops->Lock(lock_fd);
    if (absl::IsFailedPrecondition(s)) {
      s = absl::FailedPreconditionError(
          absl::StrCat("channel ", channel, " has a live writer"));
    }
    for (const std::string& name : *names) {
      if (!s.ok()) break;
      if (name == kLockFile) continue;
      s = ctx_.ops->Unlink(dir + "/" + name);
      if (absl::IsNotFound(s)) s = absl::OkStatus();
    }
    // The LOCK goes last, and closed: a FUSE server keeps a file unlinked
    // while open as a hidden file, which would keep the directory. A writer
    // that took the lock in between would have written a segment, which
    // makes the rmdir fail rather than lose it.
    ctx_.ops->Close(lock_fd).IgnoreError();
    if (s.ok()) s = ctx_.ops->Unlink(dir + "/" + kLockFile);
    if (s.ok()) s = ctx_.ops->RemoveDir(dir);
    return s;
  }

  absl::StatusOr<std::vector<std::string>> ListChannels() override {
    DW_ASSIGN_OR_RETURN(std::vector<std::string> names,
                        ctx_.ops->ListDir(ctx_.root + "/" + kChannelsDir));
    names.erase(std::remove_if(names.begin(), names.end(),
                               [](const std::string& n) {
                                 return !ValidateChannelName(n).ok();
                               }),
                names.end());
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::StatusOr<ChannelStat> StatChannel(const std::string& channel) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    return StatDirChannel(ctx_, channel);
  }

  absl::Status PublishHeartbeat(const std::string& process_id,
                                const std::string& payload) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    return WriteHeartbeat(ctx_, {process_id, ctx_.node, getpid(), 0,
                                 ++heartbeat_sequence_, payload});
  }

  absl::Status CopyHeartbeat(const Heartbeat& h) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(h.process_id));
    return WriteHeartbeat(ctx_, h);
  }

  absl::StatusOr<HeartbeatListing> ListHeartbeats() override {
    return ReadHeartbeats(ctx_);
  }

  absl::Status RemoveHeartbeat(const std::string& process_id) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    absl::Status s = ctx_.ops->Unlink(ctx_.root + "/" + kHeartbeatsDir + "/" +
                                      process_id + kHeartbeatSuffix);
    return absl::IsNotFound(s) ? absl::OkStatus() : s;
  }

  absl::Status PostToInbox(const std::string& dst_process_id,
                           const std::string& name,
                           const std::string& payload) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(dst_process_id));
    DW_RETURN_IF_ERROR(ValidateChannelName(name, "inbox message name"));
    return WriteInboxMessage(ctx_, dst_process_id, name, payload);
  }

  absl::Status DeliverInbox(
      const std::string& process_id,
      absl::FunctionRef<absl::Status(InboxMessage)> deliver,
      std::vector<std::string>* problems) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    return DeliverInboxMessages(ctx_, process_id, deliver, problems);
  }

  absl::StatusOr<std::vector<std::string>> ListInboxes() override {
    return ListInboxDirs(ctx_);
  }

  absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewWatcher(
      const WatcherOptions& options) override {
    return NewDirVolumeWatcher(ctx_, options);
  }

 private:
  const DirContext ctx_;
  std::atomic<uint64_t> heartbeat_sequence_{0};
};

// Reads the VOLUME marker: OK when it is ours, NotFound when the directory
// has none and may become a volume (it holds nothing but a volume's own
// entries), FailedPrecondition otherwise.
absl::Status ReadMarker(const DirContext& ctx) {
  const std::string marker = ctx.root + "/" + kVolumeMarker;
  absl::StatusOr<std::string> text = ReadSmallFile(*ctx.ops, marker, 4096);
  if (text.ok()) {
    if (*text == kVolumeMarkerText) return absl::OkStatus();
    if (absl::StartsWith(*text, "diskwire volume\nformat ")) {
      return absl::FailedPreconditionError(
          absl::StrCat(ctx.root, " is a diskwire volume of another format (",
                       absl::CHexEscape(absl::StripAsciiWhitespace(*text)),
                       "); this build reads format 1"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(marker, " is not a diskwire volume marker"));
  }
  if (!absl::IsNotFound(text.status())) return text.status();
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names,
                      ctx.ops->ListDir(ctx.root));
  for (const std::string& n : names) {
    if (n == kVolumeMarker) {
      // Published by another process since we read: read it again.
      return absl::AbortedError("the marker appeared");
    }
    if (n != kChannelsDir && n != kHeartbeatsDir && n != kInboxDir &&
        !absl::StartsWith(n, ".")) {
      return absl::FailedPreconditionError(absl::StrCat(
          ctx.root, " is not a diskwire volume (no ", kVolumeMarker,
          " file) and is not empty (it holds \"", absl::CHexEscape(n), "\")"));
    }
  }
  return absl::NotFoundError(absl::StrCat(marker, " is absent"));
}

// Checks or creates the VOLUME marker.
absl::Status CheckMarker(const DirContext& ctx) {
  const std::string marker = ctx.root + "/" + kVolumeMarker;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::Status read = ReadMarker(ctx);
    if (absl::IsAborted(read)) continue;
    if (!absl::IsNotFound(read)) return read;
    // Publish the marker without replacing one another process wrote.
    const std::string hidden = ctx.root + "/.marker-" +
                               std::to_string(getpid()) + "-" +
                               std::to_string(gettid());
    DW_ASSIGN_OR_RETURN(
        int fd, ctx.ops->Open(hidden, O_WRONLY | O_CREAT | O_TRUNC, 0666));
    absl::Status s = WriteAll(*ctx.ops, fd, kVolumeMarkerText, hidden);
    ctx.ops->Close(fd).IgnoreError();
    if (s.ok()) {
      s = PublishNoReplace(*ctx.ops, hidden, marker);
    } else {
      ctx.ops->Unlink(hidden).IgnoreError();
    }
    if (s.ok() || absl::IsAlreadyExists(s)) continue;  // re-read it
    return s;
  }
  return absl::UnavailableError(
      absl::StrCat(marker, " could not be read back after creating it"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Volume>> OpenDirVolume(
    const std::string& root, const DirVolumeOptions& options) {
  if (!options.mac_key.empty() && options.mac_key.size() != kMacKeySize) {
    return absl::InvalidArgumentError(absl::StrCat("MAC key must be ",
                                                   kMacKeySize, " bytes, got ",
                                                   options.mac_key.size()));
  }
  if (root.empty()) return absl::InvalidArgumentError("empty volume path");
  DirContext ctx;
  ctx.root = root;
  while (ctx.root.size() > 1 && ctx.root.back() == '/') ctx.root.pop_back();
  ctx.mac_key = options.mac_key;
  ctx.node = options.node;
  if (ctx.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    ctx.node = host;
  }
  if (options.file_ops != nullptr) {
    ctx.ops = options.file_ops;
    DW_RETURN_IF_ERROR(ctx.ops->MakeDir(ctx.root));
  } else {
    // The volume's own directory may be reached through a link (the
    // operator's choice); nothing inside it is.
    DW_RETURN_IF_ERROR(FileOps::Default()->MakeDir(ctx.root));
    DW_ASSIGN_OR_RETURN(std::unique_ptr<FileOps> confined,
                        FileOps::Confined({ctx.root}));
    ctx.owned_ops = std::move(confined);
    ctx.ops = ctx.owned_ops.get();
  }
  if (options.fd_observer != nullptr) {
    ctx.observed_ops = FileOps::Observed(ctx.ops, options.fd_observer);
    ctx.ops = ctx.observed_ops.get();
  }
  DW_RETURN_IF_ERROR(CheckMarker(ctx));
  DW_ASSIGN_OR_RETURN(ctx.network_fs, IsNetworkFilesystem(ctx.root));
  for (const char* sub : {kChannelsDir, kHeartbeatsDir, kInboxDir}) {
    DW_RETURN_IF_ERROR(ctx.ops->MakeDir(ctx.root + "/" + sub));
  }
  return std::make_unique<DirVolume>(std::move(ctx));
}

absl::Status CheckDirVolume(const std::string& root) {
  struct stat st;
  if (stat(root.c_str(), &st) != 0) {
    return ErrnoError(errno, absl::StrCat("stat ", root));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(root, " is not a directory"));
  }
  DirContext ctx;
  ctx.root = root;
  DW_ASSIGN_OR_RETURN(std::unique_ptr<FileOps> confined,
                      FileOps::Confined({root}));
  ctx.ops = confined.get();
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::Status read = ReadMarker(ctx);
    if (absl::IsAborted(read)) continue;
    if (absl::IsNotFound(read)) return absl::OkStatus();  // made on first use
    return read;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LoadMacKeyFile(const std::string& path,
                                           FileOps* ops) {
  if (ops == nullptr) ops = FileOps::Default();
  DW_ASSIGN_OR_RETURN(std::string data, ReadSmallFile(*ops, path, 4096));
  if (data.size() == kMacKeySize) return data;
  const absl::string_view hex = absl::StripTrailingAsciiWhitespace(data);
  if (hex.size() == 2 * kMacKeySize &&
      std::all_of(hex.begin(), hex.end(),
                  [](char c) { return absl::ascii_isxdigit(c); })) {
    return absl::HexStringToBytes(hex);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "key file ", path, " must hold ", kMacKeySize, " raw bytes or ",
      2 * kMacKeySize, " hex digits, got ", data.size(), " bytes"));
}

}  // namespace diskwire::storage
