#include "storage/dir_mailbox.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "absl/base/internal/endian.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/record_codec.h"

namespace diskwire::storage {
namespace {

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

std::string TempName(const std::string& dir, const std::string& name) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(dir, "/.tmp-", getpid(), "-", counter++, "-", name);
}

// Writes one committed record of `type` to a fresh temp file in `dir` and
// returns its path; the caller publishes it with rename or link.
absl::StatusOr<std::string> WriteRecordFile(const DirContext& ctx,
                                            const std::string& dir,
                                            const std::string& name,
                                            RecordType type, uint64_t seq,
                                            uint64_t timestamp_ns,
                                            const std::string& payload) {
  if (payload.size() + kRecordHeaderSize + kMacSize > kMaxMailboxFile) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload of ", payload.size(), " bytes is too big for ",
                     dir, "/", name));
  }
  RecordHeader h;
  h.type = type;
  h.stream_offset = seq;
  h.timestamp_ns = timestamp_ns != 0 ? timestamp_ns : RealtimeNs();
  std::string bytes;
  AppendEncodedRecord(h, payload, /*commit=*/true, ctx.mac_key, &bytes);
  const std::string tmp = TempName(dir, name);
  DW_ASSIGN_OR_RETURN(int fd,
                      ctx.ops->Open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666));
  absl::Status s = WriteAll(*ctx.ops, fd, bytes, tmp);
  const absl::Status closed = ctx.ops->Close(fd);
  if (s.ok()) s = closed;
  if (!s.ok()) {
    ctx.ops->Unlink(tmp).IgnoreError();
    return s;
  }
  return tmp;
}

// Reads a one-record file; the error names the file.
absl::StatusOr<DecodedRecord> ReadRecordFile(const DirContext& ctx,
                                             const std::string& path,
                                             RecordType type,
                                             std::string* storage) {
  DW_ASSIGN_OR_RETURN(*storage, ReadSmallFile(*ctx.ops, path, kMaxMailboxFile));
  DecodedRecord rec;
  const DecodeResult d = DecodeRecord(*storage, ctx.mac_key, &rec);
  if (d.kind == DecodeResult::kIncomplete) {
    return absl::DataLossError(absl::StrCat(path, ": truncated record"));
  }
  if (d.kind == DecodeResult::kInvalid) {
    return absl::Status(d.error.code(),
                        absl::StrCat(path, ": ", d.error.message()));
  }
  if (rec.size != storage->size() || rec.header.type != type) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a single record of the expected type"));
  }
  return rec;
}

// Length-prefixed string: u16 length, bytes.
bool TakeString(absl::string_view* in, std::string* out) {
  if (in->size() < 2) return false;
  const uint16_t n = absl::little_endian::Load16(in->data());
  if (in->size() < 2u + n) return false;
  out->assign(in->data() + 2, n);
  in->remove_prefix(2 + n);
  return true;
}

void PutString(absl::string_view s, std::string* out) {
  char len[2];
  absl::little_endian::Store16(len, static_cast<uint16_t>(s.size()));
  out->append(len, 2);
  out->append(s.data(), s.size());
}

}  // namespace

absl::Status WriteHeartbeat(const DirContext& ctx, const Heartbeat& h) {
  const std::string dir = ctx.root + "/" + kHeartbeatsDir;
  // Body: pid u32, process id, node (length-prefixed), then the payload.
  std::string body(4, '\0');
  absl::little_endian::Store32(body.data(), static_cast<uint32_t>(h.pid));
  PutString(h.process_id, &body);
  PutString(h.node.substr(0, 255), &body);
  body += h.payload;
  DW_ASSIGN_OR_RETURN(
      std::string tmp,
      WriteRecordFile(ctx, dir, h.process_id + kHeartbeatSuffix,
                      RecordType::kHeartbeat, h.sequence, h.time_ns, body));
  const absl::Status s =
      ctx.ops->Rename(tmp, dir + "/" + h.process_id + kHeartbeatSuffix);
  if (!s.ok()) ctx.ops->Unlink(tmp).IgnoreError();
  return s;
}

absl::StatusOr<HeartbeatListing> ReadHeartbeats(const DirContext& ctx) {
  const std::string dir = ctx.root + "/" + kHeartbeatsDir;
  HeartbeatListing listing;
  absl::StatusOr<std::vector<std::string>> names = ctx.ops->ListDir(dir);
  if (absl::IsNotFound(names.status())) return listing;
  DW_RETURN_IF_ERROR(names.status());
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    if (absl::StartsWith(name, ".")) continue;  // temp files
    const std::string path = dir + "/" + name;
    const std::string id(absl::StripSuffix(name, kHeartbeatSuffix));
    if (!absl::EndsWith(name, kHeartbeatSuffix) ||
        !ValidateProcessId(id).ok()) {
      listing.problems.push_back(absl::StrCat(path, ": foreign file"));
      continue;
    }
    std::string storage;
    absl::StatusOr<DecodedRecord> rec =
        ReadRecordFile(ctx, path, RecordType::kHeartbeat, &storage);
    if (absl::IsNotFound(rec.status())) continue;  // removed meanwhile
    if (!rec.ok()) {
      listing.problems.push_back(std::string(rec.status().message()));
      continue;
    }
    Heartbeat hb;
    absl::string_view body = rec->payload;
    if (body.size() < 4) {
      listing.problems.push_back(path + ": heartbeat body too short");
      continue;
    }
    hb.pid = absl::little_endian::Load32(body.data());
    body.remove_prefix(4);
    if (!TakeString(&body, &hb.process_id) || !TakeString(&body, &hb.node) ||
        hb.process_id != id) {
      listing.problems.push_back(path + ": malformed heartbeat body");
      continue;
    }
    hb.payload = std::string(body);
    hb.time_ns = rec->header.timestamp_ns;
    hb.sequence = rec->header.stream_offset;
    listing.heartbeats.push_back(std::move(hb));
  }
  return listing;
}

absl::Status WriteInboxMessage(const DirContext& ctx, const std::string& dst,
                               const std::string& name,
                               const std::string& payload) {
  DW_RETURN_IF_ERROR(ctx.ops->MakeDir(ctx.root + "/" + kInboxDir));
  const std::string dir = ctx.root + "/" + kInboxDir + "/" + dst;
  DW_RETURN_IF_ERROR(ctx.ops->MakeDir(dir));
  std::string body;
  PutString(name, &body);
  body += payload;
  DW_ASSIGN_OR_RETURN(
      std::string tmp,
      WriteRecordFile(ctx, dir, name, RecordType::kInbox, 0, 0, body));
  // link() publishes atomically and never replaces a pending message.
  absl::Status s = PublishNoReplace(*ctx.ops, tmp, dir + "/" + name);
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        absl::StrCat("inbox message ", dir, "/", name, " is already pending"));
  }
  return s;
}

absl::Status DeliverInboxMessages(
    const DirContext& ctx, const std::string& process_id,
    absl::FunctionRef<absl::Status(InboxMessage)> deliver,
    std::vector<std::string>* problems) {
  const std::string dir = ctx.root + "/" + kInboxDir + "/" + process_id;
  absl::StatusOr<std::vector<std::string>> names = ctx.ops->ListDir(dir);
  if (absl::IsNotFound(names.status())) return absl::OkStatus();
  DW_RETURN_IF_ERROR(names.status());
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    if (absl::StartsWith(name, ".")) continue;  // temp or set-aside files
    const std::string path = dir + "/" + name;
    std::string storage;
    absl::StatusOr<DecodedRecord> rec =
        ReadRecordFile(ctx, path, RecordType::kInbox, &storage);
    if (absl::IsNotFound(rec.status())) continue;  // taken meanwhile
    InboxMessage msg;
    absl::Status problem = rec.status();
    if (problem.ok()) {
      absl::string_view body = rec->payload;
      if (!TakeString(&body, &msg.name) || msg.name != name) {
        problem = absl::DataLossError(path + ": malformed inbox message");
      }
      msg.payload = std::string(body);
      msg.time_ns = rec->header.timestamp_ns;
    }
    if (!problem.ok()) {
      // Set it aside (dot-files are skipped) so it is reported once.
      problems->push_back(std::string(problem.message()));
      DW_RETURN_IF_ERROR(ctx.ops->Rename(path, dir + "/.bad-" + name));
      continue;
    }
    DW_RETURN_IF_ERROR(deliver(std::move(msg)));
    DW_RETURN_IF_ERROR(ctx.ops->Unlink(path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ListInboxDirs(const DirContext& ctx) {
  absl::StatusOr<std::vector<std::string>> names =
      ctx.ops->ListDir(ctx.root + "/" + kInboxDir);
  if (absl::IsNotFound(names.status())) return std::vector<std::string>{};
  DW_RETURN_IF_ERROR(names.status());
  names->erase(std::remove_if(names->begin(), names->end(),
                              [](const std::string& n) {
                                return !ValidateProcessId(n).ok();
                              }),
               names->end());
  std::sort(names->begin(), names->end());
  return names;
}

}  // namespace diskwire::storage
