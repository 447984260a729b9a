// File: storage/mirror.h
// Copies one directory volume (a host's *send volume*) to another (the
// peer's *receive volume*), as `diskwire mirror` does (docs/REPLICATION.md):
//
//   - channels record by record through the Volume API: a ChannelReader on
//     the source verifies every record (checksum, MAC), a ChannelWriter on the
//     target appends them in batches, so a target reader never sees a partial
//     batch and each channel keeps its order; a restart resumes after the
//     target's last_record();
//   - heartbeat files, verified, replaced atomically on the target;
//   - inbox messages, verified, moved exactly once (mirror_mailbox.h);
//   - source trims and channel removals, propagated to the target.
//
// A corrupt source channel stops that channel only (error naming file and
// offset, in status()); a full target (ResourceExhausted) keeps the unwritten
// batch for the next pass, so nothing is lost.

#ifndef DISKWIRE_STORAGE_MIRROR_H_
#define DISKWIRE_STORAGE_MIRROR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "storage/channel.h"
#include "storage/file_ops.h"
#include "storage/mirror_lag.h"
#include "storage/mirror_mailbox.h"
#include "storage/mirror_volume_mailbox.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct MirrorOptions {
  // Names the status file <target>/mirror/<name>.status ([a-z0-9._-]).
  std::string name = "default";
  Durability durability = Durability::kNone;
  absl::Duration sync_interval = absl::Milliseconds(100);
  std::string mac_key;  // both volumes; empty or kMacKeySize bytes
  // Filesystem calls for both volumes; nullptr for FileOps::Default().
  FileOps* file_ops = nullptr;
  // Segment size of the target's channels: the source's, for trims to free
  // the same space (a trim frees whole target segments only).
  uint64_t segment_bytes = 64ull << 20;
  size_t batch_bytes = 1 << 20;  // payload bytes per target Append, about
  // How often source trims and channel removals are looked for.
  absl::Duration trim_check_interval = absl::Seconds(1);
  // A lag above this is reported through `warn` (zero: never).
  absl::Duration max_lag = absl::ZeroDuration();
  // Lines for the operator (warnings, target full, channel errors).
  std::function<void(const std::string&)> warn;
};

// What one CopyPass() did.
struct PassResult {
  uint64_t records = 0;        // channel records appended to the target
  uint64_t bytes = 0;          // their payload bytes
  uint64_t mailbox_files = 0;  // heartbeats and inbox messages copied
};

// Thread-compatible: one thread drives a Mirror; Stop() may be called from
// any thread (or a signal handler).
class Mirror {
 public:
  // Opens (creating when missing) both volumes. InvalidArgument for a bad
  // name or key, FailedPrecondition for a directory that is not a volume.
  static absl::StatusOr<std::unique_ptr<Mirror>> Open(
      const std::string& from, const std::string& to,
      const MirrorOptions& options);
  ~Mirror();

  // Copies everything that is on the source now (channels until the reader
  // has nothing more, heartbeats, inbox) and propagates trims and removals.
  // A failed channel is skipped (see channel_errors()). ResourceExhausted or
  // Unavailable when the target refused a write: what was read and not
  // written is kept and written first by the next pass.
  absl::StatusOr<PassResult> CopyPass();

  // CopyPass() until a pass finds nothing new, waiting (with backoff) while
  // the target refuses writes. Returns the totals; Cancelled after Stop().
  absl::StatusOr<PassResult> CopyAll();

  // Copies continuously until Stop(): a pass whenever the source changes
  // (inotify, or every `poll_interval`), backing off 10 ms..1 s while the
  // target is full, and rewriting the status file every second.
  absl::Status Run(absl::Duration poll_interval = absl::Milliseconds(5));
  // Serves only copy requests made on the source (mirror_requests.h): one
  // full copy per request, then the answer. Until Stop().
  absl::Status ServeRequests(
      absl::Duration poll_interval = absl::Milliseconds(20));
  void Stop() { stop_.store(true); }

  // Writes <target>/mirror/<name>.status atomically (MirrorStatusText); on
  // a LUN target, appends it to the channel MirrorStatusChannel(name).
  absl::Status WriteStatusFile();

  // Channels stopped by an error: name → one line naming file and offset.
  const std::map<std::string, std::string>& channel_errors() const {
    return channel_errors_;
  }
  const LagStats& lag() const { return lag_; }
  const std::vector<std::string>& mailbox_problems() const {
    return mailbox_->problems();
  }
  uint64_t target_full_retries() const { return full_retries_; }

 private:
  struct ChannelCopy;
  Mirror(std::string from, std::string to, MirrorOptions options,
         std::unique_ptr<FileOps> owned_ops, std::unique_ptr<Volume> source,
         std::unique_ptr<Volume> target);

  // Copies one channel until nothing is available. Returns the pass totals;
  // a target write error is returned, a source error stops the channel.
  absl::Status CopyChannel(const std::string& name, PassResult* result);
  absl::StatusOr<ChannelCopy*> Prepare(const std::string& name);
  // Appends the pending batch and records its lag.
  absl::Status FlushPending(const std::string& name, ChannelCopy& c,
                            PassResult* result);
  void RecordLag(const std::string& name, absl::Span<const Record> appended);
  // Trims the target below what the source trimmed; removes target channels
  // whose source is gone.
  absl::Status PropagateTrims(const std::vector<std::string>& source_names);
  void Fail(const std::string& name, const absl::Status& status);
  // Volume::StatChannel's identity of the source channel (0 when absent):
  // it changes when the engine removes a stale channel and creates it again.
  uint64_t SourceChannelId(const std::string& name) const;
  // Removes the target channel (and what was read for it): the next pass
  // copies the source channel from its start.
  absl::Status Reset(const std::string& name, const std::string& why);
  void Warn(const std::string& line);
  absl::Status AppendStatusRecord(const std::string& text);
  // The copy requests waiting on the source (taken), and their answers.
  absl::StatusOr<std::vector<std::string>> PendingRequests();
  absl::Status AnswerRequest(const std::string& id, std::string summary);
  static constexpr size_t kMaxLunAnswer = 200;

  const std::string from_, to_;
  const MirrorOptions options_;
  // Confined to the two volumes when options_.file_ops is null.
  const std::unique_ptr<FileOps> owned_ops_;
  FileOps* const ops_;  // null when neither volume is a directory
  std::unique_ptr<Volume> source_, target_;
  const bool source_is_dir_, target_is_dir_;  // or a LUN
  // The source directory's files: copy requests, and heartbeats and inbox
  // when the target is a directory too.
  std::unique_ptr<MailboxCopier> files_;
  // Heartbeats and inbox through the Volume interface, when a LUN is
  // involved.
  std::unique_ptr<VolumeMailboxCopier> records_;
  MailboxMover* mailbox_;  // one of the two
  // The status channel on a LUN target, and where its next record goes.
  std::unique_ptr<ChannelWriter> status_writer_;
  uint64_t status_offset_ = 0;
  std::map<std::string, std::unique_ptr<ChannelCopy>> channels_;
  std::map<std::string, std::string> channel_errors_;
  LagStats lag_;
  uint64_t full_retries_ = 0;
  uint64_t total_records_ = 0, total_bytes_ = 0;
  absl::Time last_trim_check_ = absl::InfinitePast();
  absl::Time last_lag_warning_ = absl::InfinitePast();
  std::atomic<bool> stop_{false};
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_H_
