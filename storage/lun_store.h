// File: storage/lun_store.h
// What the LUN backend's parts share (internal to lun_volume): the device,
// its geometry, and this process's slots — the claim protocol, the extent
// map it alone writes, its heartbeat copies and outbox cells.

#ifndef DISKWIRE_STORAGE_LUN_STORE_H_
#define DISKWIRE_STORAGE_LUN_STORE_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/fork_mutex.h"
#include "storage/lun_device.h"
#include "storage/lun_layout.h"
#include "storage/volume.h"

namespace diskwire::storage {

struct LunSlotClaim {
  uint32_t slot = 0;
  LunClaim claim;
};

// One extent of a channel: its index in the slot and its map entry.
struct LunExtent {
  uint32_t index = 0;
  LunExtentEntry entry;
};

struct LunStoreOptions {
  std::string node;
  std::string mac_key;
  // A claim not renewed for this long is another process's to take; a
  // released slot that still holds channels is kept as long, for their
  // readers.
  absl::Duration lease = absl::Seconds(30);
  // The process id this process's channels (and the messages it posts) are
  // claimed under, so that a restart under the same id takes them back: a
  // mirror's stable name. Empty: the id of the first heartbeat or inbox
  // taken names the slot.
  std::string slot_id;
};

// Thread-safe.
class LunStore {
 public:
  LunStore(std::unique_ptr<LunDevice> device, LunGeometry geometry,
           LunStoreOptions options);
  ~LunStore();  // releases this process's slots

  LunDevice& device() const { return *device_; }
  const LunGeometry& geometry() const { return geometry_; }
  const std::string& mac_key() const { return options_.mac_key; }
  uint64_t RoundUp(uint64_t n) const {
    const uint64_t a = device_->align();
    return (n + a - 1) / a * a;
  }

  // Every slot with a valid claim (claimed or released), by slot number.
  absl::StatusOr<std::vector<LunSlotClaim>> ReadClaims() const;
  // Whether `c` still holds its slot against a newcomer.
  bool Live(const LunClaim& c) const;
  // Whether a newcomer may take `c`'s slot: released or expired a lease ago.
  // Its channels and heartbeat are then as good as gone.
  bool Reclaimable(const LunClaim& c) const;

  // The extents of `name` in `slot`'s map, by segment.
  absl::StatusOr<std::vector<LunExtent>> ReadChannel(
      uint32_t slot, const std::string& name) const;
  // Every slot's extents of `name`: the live claim's first (the most recently
  // claimed when several). Empty when no slot holds it.
  absl::StatusOr<std::vector<LunExtent>> FindChannel(const std::string& name,
                                                     uint32_t* slot) const;
  absl::StatusOr<std::vector<std::string>> ListChannels() const;
  absl::StatusOr<uint32_t> ExtentsInUse(uint32_t slot) const;
  // The entry of extent `index` of `slot` as the device holds it now.
  absl::StatusOr<std::optional<LunExtentEntry>> ReadEntry(uint32_t slot,
                                                          uint32_t index) const;

  // --- the writer's side, in this process's channel slot ---
  // Registers the one writer of `name` in this process and returns the
  // channel's extents (its slot in `*slot`). FailedPrecondition when this
  // process or a live other slot already writes it.
  absl::StatusOr<std::vector<LunExtent>> OpenChannel(const std::string& name,
                                                     uint32_t* slot);
  void CloseChannel(const std::string& name);
  // Takes a free extent of the channel slot for `name`'s segment `segment`.
  // ResourceExhausted when the slot has none left.
  absl::StatusOr<LunExtent> Allocate(const std::string& name, uint64_t segment,
                                     uint64_t first_offset);
  absl::Status Free(uint32_t index);
  // Frees every extent of `name` in this process's slot. FailedPrecondition
  // while a writer has it open or a live other process holds it.
  absl::Status RemoveChannel(const std::string& name);

  // --- heartbeats and inboxes ---
  // Writes `h` into the slot of h.process_id. An empty node, a zero pid or
  // time are this process's; the sequence written is above the slot's last.
  absl::Status PublishHeartbeat(const Heartbeat& h);
  absl::Status RemoveHeartbeat(const std::string& process_id);
  absl::Status PostToInbox(const std::string& dst, const std::string& name,
                           const std::string& payload);
  // Volume::DeliverInbox: per sender in sequence order; what `deliver`
  // accepted is recorded in the taken table before returning.
  absl::Status DeliverInbox(
      const std::string& process_id,
      absl::FunctionRef<absl::Status(InboxMessage)> deliver);
  // The destinations of the messages in every live sender's outbox cells.
  absl::StatusOr<std::vector<std::string>> ListInboxes() const;
  // Keeps this process's claims alive (and notices a slot taken from it).
  absl::Status Renew();

  // fork(): the store's lock is held across it (Volume::BeforeFork); the
  // child then forgets the parent's slots at its first use.
  void BeforeFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(mu_) { mu_.Lock(); }
  void AfterForkParent() ABSL_UNLOCK_FUNCTION(mu_) { mu_.Unlock(); }
  void AfterForkChild()
      ABSL_UNLOCK_FUNCTION(mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    RenewInForkChild(&mu_);
  }

 private:
  struct Owned {
    uint32_t slot = 0;
    LunClaim claim;
    std::vector<LunExtentEntry> map;  // extents_per_slot entries
    std::vector<LunCell> cells;       // outbox_cells cells
    uint64_t next_sequence = 1;
    uint64_t heartbeat_sequence = 0;
    absl::Time renewed;
    absl::Status lost;  // another process took the slot
    // Its taken table records messages taken: kept on release, so that the
    // same id coming back does not take them again.
    bool took = false;
  };

  // The slot of `process_id` ("" = the channel slot, whatever its id),
  // claimed on first use.
  absl::StatusOr<Owned*> Own(const std::string& process_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Owned*> Claim(const std::string& process_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes `old`'s slot back for `process_id`, keeping its nonce, map, cells
  // and heartbeat sequence. nullptr when another process got there first.
  absl::StatusOr<Owned*> TakeBack(const LunSlotClaim& old,
                                  const std::string& process_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Released, expired, or held by a dead process of this host.
  bool HolderIsGone(const LunClaim& c) const;
  // A claim of a slot by this process for `process_id`, from now.
  LunClaim ClaimFor(const std::string& process_id, uint64_t nonce) const;
  // Writes `c` into `slot`'s claim block; false when another host's claim
  // is what reads back.
  absl::StatusOr<bool> PlaceClaim(uint32_t slot, const LunClaim& c);
  absl::Status RenewLocked(Owned& o, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteEntry(Owned& o, uint32_t index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // In a forked child the slots are still its parent's, which goes on using
  // them: the child forgets them (never writing to them, not even to release
  // them) and claims its own on first use.
  void ForgetParentsSlots() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<LunExtentEntry>> ReadMap(uint32_t slot) const;
  // Reads [offset, offset + length), again while `torn` says it was read in
  // the middle of another process's write.
  absl::StatusOr<std::string> ReadSettled(
      uint64_t offset, size_t length,
      const std::function<bool(absl::string_view)>& torn) const;
  std::string Where(uint32_t slot) const;

  const std::unique_ptr<LunDevice> device_;
  const LunGeometry geometry_;
  const LunStoreOptions options_;
  absl::Mutex mu_;
  // By process id; the channel slot is channel_slot_.
  std::map<std::string, std::unique_ptr<Owned>> owned_ ABSL_GUARDED_BY(mu_);
  Owned* channel_slot_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::set<std::string> writers_ ABSL_GUARDED_BY(mu_);
  pid_t owner_pid_ ABSL_GUARDED_BY(mu_);  // whose slots owned_ holds
};

// CLOCK_REALTIME in nanoseconds.
uint64_t LunNowNs();

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_LUN_STORE_H_
