#include "storage/mirror_mailbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

// Largest heartbeat or inbox file accepted (as dir_mailbox.h).
constexpr size_t kMaxMailboxFile = 1 << 20;

// Sorted entries of `dir`; empty when it does not exist.
absl::StatusOr<std::vector<std::string>> List(FileOps& ops,
                                              const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ops.ListDir(dir);
  if (absl::IsNotFound(names.status())) return std::vector<std::string>{};
  DW_RETURN_IF_ERROR(names.status());
  std::sort(names->begin(), names->end());
  return names;
}

bool Exists(FileOps& ops, const std::string& path) {
  absl::StatusOr<int> fd = ops.Open(path, O_RDONLY, 0);
  if (!fd.ok()) return false;
  ops.Close(*fd).IgnoreError();
  return true;
}

}  // namespace

void MailboxCopier::Problem(const std::string& line) {
  problems_.push_back(line);
}

absl::StatusOr<std::string> MailboxCopier::ReadVerified(const std::string& path,
                                                        uint8_t type) {
  DW_ASSIGN_OR_RETURN(std::string bytes,
                      ReadSmallFile(*ops_, path, kMaxMailboxFile));
  DecodedRecord rec;
  const DecodeResult d = DecodeRecord(bytes, mac_key_, &rec);
  if (d.kind == DecodeResult::kIncomplete) {
    return absl::DataLossError(absl::StrCat(path, ": truncated record"));
  }
  if (d.kind == DecodeResult::kInvalid) {
    return absl::Status(d.error.code(),
                        absl::StrCat(path, ": ", d.error.message()));
  }
  if (rec.size != bytes.size() ||
      static_cast<uint8_t>(rec.header.type) != type || !rec.commit) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a single record of the expected type"));
  }
  return bytes;
}

absl::Status MailboxCopier::PublishCopy(const std::string& dir,
                                        const std::string& name,
                                        const std::string& bytes) {
  static std::atomic<uint64_t> counter{0};
  DW_RETURN_IF_ERROR(ops_->MakeDir(dir));
  const std::string tmp =
      absl::StrCat(dir, "/.tmp-", getpid(), "-", counter++, "-", name);
  DW_ASSIGN_OR_RETURN(int fd,
                      ops_->Open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666));
  absl::Status s = WriteAll(*ops_, fd, bytes, tmp);
  if (s.ok() && sync_) s = ops_->Sync(fd);
  const absl::Status closed = ops_->Close(fd);
  if (s.ok()) s = closed;
  if (s.ok()) s = ops_->Rename(tmp, dir + "/" + name);
  if (!s.ok()) {
    ops_->Unlink(tmp).IgnoreError();
    return s;
  }
  return sync_ ? ops_->SyncDir(dir) : absl::OkStatus();
}

absl::StatusOr<uint64_t> MailboxCopier::CopyHeartbeats() {
  const std::string src = from_ + "/" + kHeartbeatsDir;
  const std::string dst = to_ + "/" + kHeartbeatsDir;
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, List(*ops_, src));
  uint64_t copied = 0;
  std::map<std::string, std::string> seen;
  for (const std::string& name : names) {
    if (absl::StartsWith(name, ".")) continue;
    if (!absl::EndsWith(name, kHeartbeatSuffix)) continue;  // listed by
    // ReadHeartbeats as foreign on the source already
    absl::StatusOr<std::string> bytes = ReadVerified(
        src + "/" + name, static_cast<uint8_t>(RecordType::kHeartbeat));
    if (absl::IsNotFound(bytes.status())) continue;  // removed meanwhile
    auto old = heartbeats_.find(name);
    if (!bytes.ok()) {
      // Keep the last good copy on the target; report each new corruption.
      const std::string line(bytes.status().message());
      if (bad_heartbeats_[name] != line) Problem(line);
      bad_heartbeats_[name] = line;
      if (old != heartbeats_.end())
        seen[name] = old->second;
      else
        seen[name] = "";
      continue;
    }
    bad_heartbeats_.erase(name);
    if (old == heartbeats_.end() || old->second != *bytes) {
      DW_RETURN_IF_ERROR(PublishCopy(dst, name, *bytes));
      ++copied;
    }
    seen[name] = *std::move(bytes);
  }
  // Heartbeats removed on the source (or left by an earlier run).
  DW_ASSIGN_OR_RETURN(std::vector<std::string> targets, List(*ops_, dst));
  for (const std::string& name : targets) {
    if (absl::StartsWith(name, ".") || seen.count(name)) continue;
    if (!absl::EndsWith(name, kHeartbeatSuffix)) continue;
    absl::Status s = ops_->Unlink(dst + "/" + name);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  heartbeats_ = std::move(seen);
  return copied;
}

absl::StatusOr<uint64_t> MailboxCopier::MoveInbox() {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                      List(*ops_, from_ + "/" + kInboxDir));
  DW_ASSIGN_OR_RETURN(std::vector<std::string> staged_ids,
                      List(*ops_, to_ + "/" + kInboxDir));
  for (const std::string& id : staged_ids) {
    if (!std::count(ids.begin(), ids.end(), id)) ids.push_back(id);
  }
  uint64_t moved = 0;
  for (const std::string& id : ids) {
    if (!ValidateProcessId(id).ok()) continue;
    DW_ASSIGN_OR_RETURN(uint64_t n, MoveInboxOf(id));
    moved += n;
  }
  return moved;
}

absl::StatusOr<uint64_t> MailboxCopier::MoveInboxOf(const std::string& id) {
  const std::string src = absl::StrCat(from_, "/", kInboxDir, "/", id);
  const std::string dst = absl::StrCat(to_, "/", kInboxDir, "/", id);
  // 1. Claim new messages on the source.
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names, List(*ops_, src));
  for (const std::string& name : names) {
    if (absl::StartsWith(name, ".")) continue;
    const std::string path = src + "/" + name;
    absl::StatusOr<std::string> bytes =
        ReadVerified(path, static_cast<uint8_t>(RecordType::kInbox));
    if (absl::IsNotFound(bytes.status())) continue;  // taken meanwhile
    if (!bytes.ok() || !ValidateChannelName(name, "inbox message").ok()) {
      Problem(bytes.ok() ? path + ": foreign file"
                         : std::string(bytes.status().message()));
      DW_RETURN_IF_ERROR(ops_->Rename(path, src + "/.bad-" + name));
      continue;
    }
    DW_RETURN_IF_ERROR(
        ops_->Rename(path, src + "/" + kMirrorStagePrefix + name));
  }
  // 2, 3. Stage claimed messages on the target, then drop the claim.
  DW_ASSIGN_OR_RETURN(names, List(*ops_, src));
  for (const std::string& staged : names) {
    if (!absl::StartsWith(staged, kMirrorStagePrefix)) continue;
    const std::string claim = src + "/" + staged;
    if (!Exists(*ops_, dst + "/" + staged)) {
      absl::StatusOr<std::string> bytes =
          ReadVerified(claim, static_cast<uint8_t>(RecordType::kInbox));
      if (absl::IsNotFound(bytes.status())) continue;
      DW_RETURN_IF_ERROR(bytes.status());  // verified when claimed
      DW_RETURN_IF_ERROR(ops_->MakeDir(to_ + "/" + kInboxDir));
      DW_RETURN_IF_ERROR(PublishCopy(dst, staged, *bytes));
    }
    absl::Status s = ops_->Unlink(claim);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  // 4. Deliver staged messages on the target.
  uint64_t moved = 0;
  DW_ASSIGN_OR_RETURN(names, List(*ops_, dst));
  for (const std::string& staged : names) {
    if (!absl::StartsWith(staged, kMirrorStagePrefix)) continue;
    const std::string name(absl::StripPrefix(staged, kMirrorStagePrefix));
    if (Exists(*ops_, dst + "/" + name)) {
      // A pending message of that name: never replace it; retried later.
      Problem(absl::StrCat(dst, "/", name,
                           " is still pending; the copy waits as ", staged));
      continue;
    }
    DW_RETURN_IF_ERROR(ops_->Rename(dst + "/" + staged, dst + "/" + name));
    if (sync_) DW_RETURN_IF_ERROR(ops_->SyncDir(dst));
    ++moved;
  }
  return moved;
}

absl::StatusOr<std::vector<std::string>> MailboxCopier::PendingRequests() {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> names,
                      List(*ops_, from_ + "/" + kMirrorRequestsDir));
  std::vector<std::string> ids;
  for (const std::string& name : names) {
    if (absl::StartsWith(name, ".")) continue;
    if (!ValidateChannelName(name, "copy request name").ok()) {
      const std::string line =
          absl::StrCat(from_, "/", kMirrorRequestsDir, "/", name,
                       ": bad request name (use [a-z0-9._-]); ignored");
      if (!std::count(problems_.begin(), problems_.end(), line)) Problem(line);
      continue;
    }
    ids.push_back(name);
  }
  return ids;
}

absl::Status MailboxCopier::AnswerRequest(const std::string& id,
                                          const std::string& summary) {
  DW_RETURN_IF_ERROR(ops_->MakeDir(from_ + "/" + kMirrorDir));
  DW_RETURN_IF_ERROR(PublishCopy(from_ + "/" + kMirrorDoneDir, id, summary));
  absl::Status s =
      ops_->Unlink(absl::StrCat(from_, "/", kMirrorRequestsDir, "/", id));
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

}  // namespace diskwire::storage
