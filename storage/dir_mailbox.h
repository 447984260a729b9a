// File: storage/dir_mailbox.h
// Heartbeat files and inbox messages of the directory backend (internal to
// dir_volume). Each file holds exactly one record (docs/FORMAT.md).

#ifndef DISKWIRE_STORAGE_DIR_MAILBOX_H_
#define DISKWIRE_STORAGE_DIR_MAILBOX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/dir_channel.h"
#include "storage/volume.h"

namespace diskwire::storage {

// Largest heartbeat or inbox file accepted.
inline constexpr size_t kMaxMailboxFile = 1 << 20;

// REQUIRES: ValidateProcessId(h.process_id) is OK. A zero h.time_ns is now.
absl::Status WriteHeartbeat(const DirContext& ctx, const Heartbeat& h);
absl::StatusOr<HeartbeatListing> ReadHeartbeats(const DirContext& ctx);

// REQUIRES: valid process id and message name.
absl::Status WriteInboxMessage(const DirContext& ctx, const std::string& dst,
                               const std::string& name,
                               const std::string& payload);
absl::Status DeliverInboxMessages(
    const DirContext& ctx, const std::string& process_id,
    absl::FunctionRef<absl::Status(InboxMessage)> deliver,
    std::vector<std::string>* problems);
// The inbox directories' names that are process ids, sorted.
absl::StatusOr<std::vector<std::string>> ListInboxDirs(const DirContext& ctx);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_DIR_MAILBOX_H_
