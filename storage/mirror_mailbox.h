// File: storage/mirror_mailbox.h
// The file-per-record parts of a volume as the mirror copies them (internal
// to mirror.cc; layout in docs/FORMAT.md, protocol in docs/REPLICATION.md):
//
//   - heartbeats/<id>.hb: verified (one committed HEARTBEAT record), copied
//     byte for byte (so time, pid and node stay the publisher's) to a temp
//     file and renamed over the target's; removed when gone from the source.
//   - inbox/<id>/<name>: moved exactly once, whatever the instant of a crash:
//       1. source: rename <name> → .mirror-<name> (claimed: the source's own
//          TakeInbox skips dot-files);
//       2. target: write .mirror-<name> (temp + rename: whole or absent);
//       3. source: unlink .mirror-<name>;
//       4. target: rename .mirror-<name> → <name> (appears and leaves the
//          staging name in one step, so it is delivered once).
//     A restart redoes whichever step the files show is missing.
//   - mirror/requests/<id> on the source: copy requests (claim 10), answered
//     with mirror/done/<id> on the source.
//
// Thread-compatible.

#ifndef DISKWIRE_STORAGE_MIRROR_MAILBOX_H_
#define DISKWIRE_STORAGE_MIRROR_MAILBOX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/file_ops.h"

namespace diskwire::storage {

inline constexpr char kMirrorDir[] = "mirror";
inline constexpr char kMirrorRequestsDir[] = "mirror/requests";
inline constexpr char kMirrorDoneDir[] = "mirror/done";
inline constexpr char kMirrorStagePrefix[] = ".mirror-";

// What a mirror does with heartbeats and inbox messages, whatever the
// volumes (MailboxCopier for two directories, VolumeMailboxCopier otherwise).
class MailboxMover {
 public:
  virtual ~MailboxMover() = default;
  // Copies changed heartbeats, removes vanished ones. Returns how many it
  // copied.
  virtual absl::StatusOr<uint64_t> CopyHeartbeats() = 0;
  // Moves every pending inbox message. Returns how many it delivered.
  virtual absl::StatusOr<uint64_t> MoveInbox() = 0;
  // Corrupt or foreign files or records met, each reported once.
  virtual const std::vector<std::string>& problems() const = 0;
};

class MailboxCopier final : public MailboxMover {
 public:
  // `ops` outlives this object. `sync`: fsync copied files and directories.
  MailboxCopier(FileOps* ops, std::string from, std::string to,
                std::string mac_key, bool sync)
      : ops_(ops),
        from_(std::move(from)),
        to_(std::move(to)),
        mac_key_(std::move(mac_key)),
        sync_(sync) {}

  absl::StatusOr<uint64_t> CopyHeartbeats() override;
  absl::StatusOr<uint64_t> MoveInbox() override;

  // Names of pending copy requests on the source, sorted.
  absl::StatusOr<std::vector<std::string>> PendingRequests();
  // Writes mirror/done/<id> (containing `summary`) and removes the request.
  absl::Status AnswerRequest(const std::string& id, const std::string& summary);

  // Corrupt inbox messages are set aside on the source as .bad-<name>.
  const std::vector<std::string>& problems() const override {
    return problems_;
  }

 private:
  // Reads `path` and checks it is exactly one committed record of `type`.
  absl::StatusOr<std::string> ReadVerified(const std::string& path,
                                           uint8_t type);
  // Writes `bytes` to a temp file in `dir` and renames it to `dir/name`.
  absl::Status PublishCopy(const std::string& dir, const std::string& name,
                           const std::string& bytes);
  absl::StatusOr<uint64_t> MoveInboxOf(const std::string& process_id);
  void Problem(const std::string& line);

  FileOps* const ops_;
  const std::string from_, to_, mac_key_;
  const bool sync_;
  std::map<std::string, std::string> heartbeats_;  // name → bytes copied
  std::vector<std::string> problems_;
  std::map<std::string, std::string> bad_heartbeats_;  // name → last problem
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_MAILBOX_H_
