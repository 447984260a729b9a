#include "storage/mirror_volume_mailbox.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/mirror_requests.h"

namespace diskwire::storage {

absl::StatusOr<uint64_t> VolumeMailboxCopier::CopyHeartbeats() {
  DW_ASSIGN_OR_RETURN(HeartbeatListing source, source_.ListHeartbeats());
  for (const std::string& p : source.problems) {
    if (std::find(problems_.begin(), problems_.end(), p) == problems_.end()) {
      problems_.push_back(p);
    }
  }
  uint64_t copied = 0;
  std::map<std::string, std::string> seen;
  for (const Heartbeat& h : source.heartbeats) {
    const std::string stamp = absl::StrCat(h.sequence, "#", h.time_ns);
    auto old = copied_.find(h.process_id);
    if (old == copied_.end() || old->second != stamp) {
      DW_RETURN_IF_ERROR(target_.CopyHeartbeat(h));
      ++copied;
    }
    seen[h.process_id] = stamp;
  }
  // Heartbeats gone from the source (or left by an earlier run).
  DW_ASSIGN_OR_RETURN(HeartbeatListing target, target_.ListHeartbeats());
  for (const Heartbeat& h : target.heartbeats) {
    if (!seen.count(h.process_id)) {
      DW_RETURN_IF_ERROR(target_.RemoveHeartbeat(h.process_id));
    }
  }
  copied_ = std::move(seen);
  return copied;
}

absl::StatusOr<uint64_t> VolumeMailboxCopier::MoveInbox() {
  DW_ASSIGN_OR_RETURN(std::vector<std::string> ids, source_.ListInboxes());
  uint64_t moved = 0;
  for (const std::string& id : ids) {
    // The mirrors' own requests and answers stay where they were posted.
    if (absl::StartsWith(id, kMirrorControlPrefix)) continue;
    std::vector<std::string> problems;
    absl::Status s = source_.DeliverInbox(
        id,
        [&](InboxMessage m) {
          absl::Status posted = target_.PostToInbox(id, m.name, m.payload);
          if (absl::IsAlreadyExists(posted)) return absl::OkStatus();
          if (posted.ok()) ++moved;
          return posted;
        },
        &problems);
    problems_.insert(problems_.end(), problems.begin(), problems.end());
    DW_RETURN_IF_ERROR(s);
  }
  return moved;
}

}  // namespace diskwire::storage
