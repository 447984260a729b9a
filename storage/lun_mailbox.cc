// LunStore's heartbeats and inbox (lun_store.h): a slot's two heartbeat
// copies, its outbox cells, and the taken table of the receiving slot.

#include <unistd.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/lun_store.h"

namespace diskwire::storage {

absl::Status LunStore::PublishHeartbeat(const Heartbeat& hb) {
  absl::MutexLock lock(&mu_);
  DW_ASSIGN_OR_RETURN(Owned * o, Own(hb.process_id));
  LunHeartbeat h;
  // Readers take the copy with the higher sequence.
  o->heartbeat_sequence = std::max(o->heartbeat_sequence + 1, hb.sequence);
  h.sequence = o->heartbeat_sequence;
  h.time_ns = hb.time_ns != 0 ? hb.time_ns : LunNowNs();
  h.pid = hb.pid != 0 ? hb.pid : getpid();
  h.nonce = o->claim.nonce;
  h.process_id = hb.process_id;
  h.node = hb.node.empty() ? options_.node : hb.node;
  h.payload = hb.payload;
  std::string bytes = EncodeHeartbeat(h);
  if (bytes.size() > geometry_.heartbeat_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        Where(o->slot), ": a heartbeat of ", bytes.size(),
        " bytes does not fit the volume's ", geometry_.heartbeat_bytes,
        " (diskwire format --heartbeat-bytes)"));
  }
  bytes.resize(RoundUp(bytes.size()), '\0');
  // Alternate copies: a torn write leaves the other one whole.
  return device_->Write(geometry_.heartbeat_offset(o->slot, h.sequence % 2),
                        bytes);
}

absl::Status LunStore::RemoveHeartbeat(const std::string& process_id) {
  absl::MutexLock lock(&mu_);
  ForgetParentsSlots();
  auto it = owned_.find(process_id);
  if (it == owned_.end()) return absl::OkStatus();
  const std::string zeros(device_->align(), '\0');
  for (int copy : {0, 1}) {
    DW_RETURN_IF_ERROR(device_->Write(
        geometry_.heartbeat_offset(it->second->slot, copy), zeros));
  }
  return absl::OkStatus();
}

absl::Status LunStore::PostToInbox(const std::string& dst,
                                   const std::string& name,
                                   const std::string& payload) {
  if (payload.size() > kLunCellPayloadMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inbox message ", name, " of ", payload.size(),
        " bytes: a LUN volume carries at most ", kLunCellPayloadMax));
  }
  absl::MutexLock lock(&mu_);
  DW_ASSIGN_OR_RETURN(Owned * o, Own(""));
  for (const LunCell& c : o->cells) {
    if (c.sequence != 0 && c.dst == dst && c.name == name) {
      return absl::AlreadyExistsError(
          absl::StrCat("inbox message ", name, " for ", dst, " is pending"));
    }
  }
  auto free_cell = [&]() -> int {
    for (size_t i = 0; i < o->cells.size(); ++i) {
      if (o->cells[i].sequence == 0) return static_cast<int>(i);
    }
    return -1;
  };
  if (free_cell() < 0) {
    // Which cells have their receivers taken (or will never take)?
    DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
    const uint64_t expired =
        LunNowNs() - absl::ToInt64Nanoseconds(options_.lease);
    for (LunCell& c : o->cells) {
      bool done = c.time_ns < expired;
      for (const LunSlotClaim& r : claims) {
        if (done || r.claim.process_id != c.dst) continue;
        DW_ASSIGN_OR_RETURN(
            std::string block,
            device_->Read(geometry_.taken_offset(r.slot), kLunBlock));
        const LunTaken t = DecodeTaken(block);
        done = t.nonce[o->slot] == o->claim.nonce &&
               t.sequence[o->slot] >= c.sequence;
      }
      if (done) c = LunCell{};
    }
  }
  const int i = free_cell();
  if (i < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat(Where(o->slot), ": all ", o->cells.size(),
                     " outbox cells hold messages not yet taken"));
  }
  LunCell c;
  c.sequence = o->next_sequence++;
  c.time_ns = LunNowNs();
  c.nonce = o->claim.nonce;
  c.dst = dst;
  c.name = name;
  c.payload = payload;
  DW_RETURN_IF_ERROR(
      device_->Write(geometry_.cell_offset(o->slot, i), EncodeCell(c)));
  o->cells[i] = std::move(c);
  return absl::OkStatus();
}

absl::Status LunStore::DeliverInbox(
    const std::string& process_id,
    absl::FunctionRef<absl::Status(InboxMessage)> deliver) {
  absl::MutexLock lock(&mu_);
  DW_ASSIGN_OR_RETURN(Owned * o, Own(process_id));
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  DW_ASSIGN_OR_RETURN(
      std::string block,
      device_->Read(geometry_.taken_offset(o->slot), kLunBlock));
  LunTaken taken = DecodeTaken(block);
  bool changed = false;
  absl::Status refused;
  for (const LunSlotClaim& s : claims) {
    if (!refused.ok()) break;
    if (taken.nonce[s.slot] != s.claim.nonce) {
      taken.nonce[s.slot] = s.claim.nonce;  // a new sender in that slot
      taken.sequence[s.slot] = 0;
      changed = true;
    }
    DW_ASSIGN_OR_RETURN(
        std::string cells,
        device_->Read(geometry_.cell_offset(s.slot, 0),
                      uint64_t{geometry_.outbox_cells} * kLunBlock));
    std::vector<LunCell> mine;
    for (uint32_t i = 0; i < geometry_.outbox_cells; ++i) {
      std::optional<LunCell> c =
          DecodeCell(absl::string_view(cells).substr(i * kLunBlock, kLunBlock));
      if (c && c->dst == process_id && c->nonce == s.claim.nonce &&
          c->sequence > taken.sequence[s.slot]) {
        mine.push_back(std::move(*c));
      }
    }
    // The taken table keeps the highest sequence per sender: deliver in
    // that order, and stop at the first refusal.
    std::sort(mine.begin(), mine.end(), [](const LunCell& a, const LunCell& b) {
      return a.sequence < b.sequence;
    });
    for (LunCell& c : mine) {
      const uint64_t sequence = c.sequence;
      refused = deliver({std::move(c.name), c.time_ns, std::move(c.payload)});
      if (!refused.ok()) break;
      taken.sequence[s.slot] = sequence;
      changed = true;
    }
  }
  // Recorded before returning: taken once, never twice.
  if (changed) {
    DW_RETURN_IF_ERROR(
        device_->Write(geometry_.taken_offset(o->slot), EncodeTaken(taken)));
    o->took = true;
  }
  return refused;
}

absl::StatusOr<std::vector<std::string>> LunStore::ListInboxes() const {
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  std::set<std::string> out;
  for (const LunSlotClaim& s : claims) {
    if (Reclaimable(s.claim)) continue;
    DW_ASSIGN_OR_RETURN(
        std::string cells,
        device_->Read(geometry_.cell_offset(s.slot, 0),
                      uint64_t{geometry_.outbox_cells} * kLunBlock));
    for (uint32_t i = 0; i < geometry_.outbox_cells; ++i) {
      std::optional<LunCell> c =
          DecodeCell(absl::string_view(cells).substr(i * kLunBlock, kLunBlock));
      if (c && c->nonce == s.claim.nonce) out.insert(c->dst);
    }
  }
  return std::vector<std::string>(out.begin(), out.end());
}

}  // namespace diskwire::storage
