// File: storage/mirror_volume_mailbox.h
// Heartbeats and inbox messages as `diskwire mirror` moves them when either
// volume is not a directory (a LUN): through the Volume interface, since a
// LUN has no files to copy (internal to mirror.cc; directory to directory,
// MailboxCopier copies the files themselves, mirror_mailbox.h).
//
//   - heartbeats: a source heartbeat whose sequence or time moved since the
//     last copy is CopyHeartbeat()ed (publisher's node, pid and time kept);
//     one gone from the source goes from the target.
//   - inbox: for each destination that has messages on the source, every
//     message is posted to the target's inbox and only then forgotten by the
//     source (Volume::DeliverInbox): a target refusal leaves it pending for
//     the next pass. One already pending on the target (a pass cut short
//     between the two steps) counts as posted. A mirror killed between the
//     two steps, after the receiver already took the message, delivers it
//     once more: at least once, never lost. The inboxes of the mirrors' own
//     process ids (copy requests, mirror_requests.h) are not moved.
//
// Thread-compatible.

#ifndef DISKWIRE_STORAGE_MIRROR_VOLUME_MAILBOX_H_
#define DISKWIRE_STORAGE_MIRROR_VOLUME_MAILBOX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/mirror_mailbox.h"
#include "storage/volume.h"

namespace diskwire::storage {

class VolumeMailboxCopier final : public MailboxMover {
 public:
  // Both volumes outlive this object.
  VolumeMailboxCopier(Volume* source, Volume* target)
      : source_(*source), target_(*target) {}

  absl::StatusOr<uint64_t> CopyHeartbeats() override;
  absl::StatusOr<uint64_t> MoveInbox() override;
  const std::vector<std::string>& problems() const override {
    return problems_;
  }

 private:
  Volume& source_;
  Volume& target_;
  // process id → "sequence#time" of the copy on the target.
  std::map<std::string, std::string> copied_;
  std::vector<std::string> problems_;
};

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_MIRROR_VOLUME_MAILBOX_H_
