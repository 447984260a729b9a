#include "storage/lun_store.h"

#include <signal.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace diskwire::storage {
namespace {

// After writing a claim, wait this long and read it back: a process of
// another host that read the slot as free just before has written its own
// by then, and one of the two sees the other's nonce and moves on.
constexpr absl::Duration kClaimSettle = absl::Milliseconds(20);
constexpr int kTornRetries = 5;

uint64_t RandomNonZero() {
  uint64_t v = 0;
  while (v == 0) {
    if (getrandom(&v, sizeof(v), 0) != sizeof(v)) v = LunNowNs() ^ getpid();
  }
  return v;
}

}  // namespace

uint64_t LunNowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}

LunStore::LunStore(std::unique_ptr<LunDevice> device, LunGeometry geometry,
                   LunStoreOptions options)
    : device_(std::move(device)),
      geometry_(std::move(geometry)),
      options_(std::move(options)),
      owner_pid_(getpid()) {}

void LunStore::ForgetParentsSlots() {
  if (owner_pid_ == getpid()) return;
  for (auto& [id, o] : owned_) (void)o.release();
  owned_.clear();
  channel_slot_ = nullptr;
  writers_.clear();
  owner_pid_ = getpid();
}

LunStore::~LunStore() {
  absl::MutexLock lock(&mu_);
  ForgetParentsSlots();
  for (auto& [id, o] : owned_) {
    if (!o->lost.ok()) continue;
    // A slot that holds no channel and no message is free at once; one that
    // does stays readable for a lease.
    const bool holds =
        o->took ||
        std::any_of(o->map.begin(), o->map.end(),
                    [](const LunExtentEntry& e) { return e.generation; }) ||
        std::any_of(o->cells.begin(), o->cells.end(),
                    [](const LunCell& c) { return c.sequence; });
    LunClaim c = o->claim;
    c.state = holds ? LunClaim::kReleased : LunClaim::kFree;
    c.renewed_ns = LunNowNs();
    const std::string block =
        holds ? EncodeClaim(c) : std::string(kLunBlock, '\0');
    device_->Write(geometry_.claim_offset(o->slot), block).IgnoreError();
    device_->UnlockRange(geometry_.claim_offset(o->slot), kLunBlock)
        .IgnoreError();
  }
}

std::string LunStore::Where(uint32_t slot) const {
  return absl::StrCat(device_->path(), " slot ", slot);
}

bool LunStore::Live(const LunClaim& c) const {
  if (c.state != LunClaim::kClaimed) return false;
  const uint64_t now = LunNowNs();
  return c.renewed_ns + absl::ToInt64Nanoseconds(options_.lease) > now;
}

absl::StatusOr<std::string> LunStore::ReadSettled(
    uint64_t offset, size_t length,
    const std::function<bool(absl::string_view)>& torn) const {
  DW_ASSIGN_OR_RETURN(std::string bytes, device_->Read(offset, length));
  // Another process rewrites its blocks in place (a claim renewed, an entry
  // freed); a read that crosses the write shows half of each. The write is
  // short: read again. What is still torn after that is corrupt, and counts
  // as absent.
  for (int i = 0; i < kTornRetries && torn(bytes); ++i) {
    absl::SleepFor(absl::Microseconds(200));
    DW_ASSIGN_OR_RETURN(bytes, device_->Read(offset, length));
  }
  return bytes;
}

bool LunStore::Reclaimable(const LunClaim& c) const {
  return c.renewed_ns + absl::ToInt64Nanoseconds(options_.lease) <= LunNowNs();
}

absl::StatusOr<std::vector<LunSlotClaim>> LunStore::ReadClaims() const {
  std::vector<LunSlotClaim> out;
  // A claim takes the first 256 bytes of its block: one logical block of
  // the device holds it.
  const size_t unit = std::max<size_t>(device_->align(), 256);
  for (uint32_t i = 0; i < geometry_.slots; ++i) {
    DW_ASSIGN_OR_RETURN(
        std::string block,
        ReadSettled(geometry_.claim_offset(i), unit,
                    [](absl::string_view b) { return TornClaim(b); }));
    std::optional<LunClaim> c = DecodeClaim(block);
    if (c && c->state != LunClaim::kFree) out.push_back({i, *c});
  }
  return out;
}

absl::StatusOr<std::vector<LunExtentEntry>> LunStore::ReadMap(
    uint32_t slot) const {
  DW_ASSIGN_OR_RETURN(
      std::string bytes,
      ReadSettled(geometry_.map_offset(slot), geometry_.map_bytes(),
                  [](absl::string_view b) {
                    for (size_t at = 0; at + kLunExtentEntrySize <= b.size();
                         at += kLunExtentEntrySize) {
                      if (TornExtentEntry(b.substr(at, kLunExtentEntrySize)))
                        return true;
                    }
                    return false;
                  }));
  std::vector<LunExtentEntry> map(geometry_.extents_per_slot);
  for (uint32_t j = 0; j < geometry_.extents_per_slot; ++j) {
    std::optional<LunExtentEntry> e =
        DecodeExtentEntry(absl::string_view(bytes).substr(
            j * kLunExtentEntrySize, kLunExtentEntrySize));
    if (e) map[j] = std::move(*e);
  }
  return map;
}

absl::StatusOr<std::optional<LunExtentEntry>> LunStore::ReadEntry(
    uint32_t slot, uint32_t index) const {
  const uint64_t at = geometry_.map_offset(slot) + index * kLunExtentEntrySize;
  const uint64_t unit = at / device_->align() * device_->align();
  DW_ASSIGN_OR_RETURN(
      std::string bytes,
      ReadSettled(unit, device_->align(), [&](absl::string_view b) {
        return TornExtentEntry(b.substr(at - unit, kLunExtentEntrySize));
      }));
  return DecodeExtentEntry(absl::string_view(bytes).substr(at - unit));
}

absl::StatusOr<std::vector<LunExtent>> LunStore::ReadChannel(
    uint32_t slot, const std::string& name) const {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtentEntry> map, ReadMap(slot));
  std::vector<LunExtent> out;
  for (uint32_t j = 0; j < map.size(); ++j) {
    if (map[j].generation != 0 && map[j].name == name)
      out.push_back({j, map[j]});
  }
  std::sort(out.begin(), out.end(), [](const LunExtent& a, const LunExtent& b) {
    return a.entry.segment < b.entry.segment;
  });
  return out;
}

absl::StatusOr<std::vector<LunExtent>> LunStore::FindChannel(
    const std::string& name, uint32_t* slot) const {
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  // Live claims first, the newest first: a name a dead process left behind
  // loses to the process that writes it now.
  std::sort(claims.begin(), claims.end(),
            [&](const LunSlotClaim& a, const LunSlotClaim& b) {
              if (Live(a.claim) != Live(b.claim)) return Live(a.claim);
              return a.claim.claimed_ns > b.claim.claimed_ns;
            });
  for (const LunSlotClaim& c : claims) {
    DW_ASSIGN_OR_RETURN(std::vector<LunExtent> extents,
                        ReadChannel(c.slot, name));
    if (!extents.empty()) {
      *slot = c.slot;
      return extents;
    }
  }
  return std::vector<LunExtent>{};
}

absl::StatusOr<uint32_t> LunStore::ExtentsInUse(uint32_t slot) const {
  DW_ASSIGN_OR_RETURN(std::vector<LunExtentEntry> map, ReadMap(slot));
  return static_cast<uint32_t>(
      std::count_if(map.begin(), map.end(),
                    [](const LunExtentEntry& e) { return e.generation != 0; }));
}

absl::StatusOr<std::vector<std::string>> LunStore::ListChannels() const {
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  std::set<std::string> names;
  for (const LunSlotClaim& c : claims) {
    if (Reclaimable(c.claim)) continue;
    DW_ASSIGN_OR_RETURN(std::vector<LunExtentEntry> map, ReadMap(c.slot));
    for (const LunExtentEntry& e : map) {
      if (e.generation != 0) names.insert(e.name);
    }
  }
  return std::vector<std::string>(names.begin(), names.end());
}

LunClaim LunStore::ClaimFor(const std::string& process_id,
                            uint64_t nonce) const {
  LunClaim c;
  c.state = LunClaim::kClaimed;
  c.nonce = nonce;
  c.claimed_ns = c.renewed_ns = LunNowNs();
  c.pid = getpid();
  c.node = options_.node;
  c.process_id = process_id;
  return c;
}

absl::StatusOr<bool> LunStore::PlaceClaim(uint32_t slot, const LunClaim& c) {
  const uint64_t at = geometry_.claim_offset(slot);
  DW_RETURN_IF_ERROR(device_->Write(at, EncodeClaim(c)));
  // Two hosts may write one claim block at once (a host's range lock does
  // not reach the other): the one read back a moment later won.
  absl::SleepFor(kClaimSettle);
  DW_ASSIGN_OR_RETURN(std::string back, device_->Read(at, kLunBlock));
  std::optional<LunClaim> mine = DecodeClaim(back);
  return mine && mine->nonce == c.nonce && mine->claimed_ns == c.claimed_ns;
}

bool LunStore::HolderIsGone(const LunClaim& c) const {
  if (c.state == LunClaim::kReleased || Reclaimable(c)) return true;
  // A process of this host that died without releasing: no need to wait out
  // its lease.
  return c.node == options_.node && c.pid > 0 &&
         kill(static_cast<pid_t>(c.pid), 0) != 0 && errno == ESRCH;
}

absl::StatusOr<LunStore::Owned*> LunStore::TakeBack(
    const LunSlotClaim& old, const std::string& process_id) {
  const uint64_t at = geometry_.claim_offset(old.slot);
  if (!device_->LockRange(at, kLunBlock).ok()) return nullptr;
  auto unlock = [&] { device_->UnlockRange(at, kLunBlock).IgnoreError(); };
  DW_ASSIGN_OR_RETURN(std::string now_block, device_->Read(at, kLunBlock));
  std::optional<LunClaim> now = DecodeClaim(now_block);
  if (!now || now->nonce != old.claim.nonce || !HolderIsGone(*now)) {
    unlock();
    return nullptr;
  }
  // The same nonce: the slot's heartbeat copies, its outbox cells and the
  // receivers' taken tables stay valid; a new claimed_ns tells an old holder
  // that only seemed dead that the slot is no longer its own (RenewLocked).
  auto o = std::make_unique<Owned>();
  o->slot = old.slot;
  o->claim = ClaimFor(process_id, now->nonce);
  DW_ASSIGN_OR_RETURN(bool placed, PlaceClaim(old.slot, o->claim));
  if (!placed) {
    unlock();
    return nullptr;  // another host took it back first
  }
  DW_ASSIGN_OR_RETURN(o->map, ReadMap(old.slot));
  DW_ASSIGN_OR_RETURN(
      std::string cells,
      device_->Read(geometry_.cell_offset(old.slot, 0),
                    uint64_t{geometry_.outbox_cells} * kLunBlock));
  o->cells.assign(geometry_.outbox_cells, LunCell{});
  for (uint32_t i = 0; i < geometry_.outbox_cells; ++i) {
    std::optional<LunCell> c =
        DecodeCell(absl::string_view(cells).substr(i * kLunBlock, kLunBlock));
    if (!c || c->nonce != o->claim.nonce) continue;
    o->next_sequence = std::max(o->next_sequence, c->sequence + 1);
    o->cells[i] = std::move(*c);
  }
  // Its next heartbeat must beat the copies already there. Taken back
  // rarely: each copy is read whole.
  for (int copy : {0, 1}) {
    DW_ASSIGN_OR_RETURN(
        std::string bytes,
        device_->Read(geometry_.heartbeat_offset(old.slot, copy),
                      RoundUp(geometry_.heartbeat_bytes)));
    size_t total = 0;
    std::optional<LunHeartbeat> h = DecodeHeartbeat(bytes, &total);
    if (h && h->nonce == o->claim.nonce) {
      o->heartbeat_sequence = std::max(o->heartbeat_sequence, h->sequence);
    }
  }
  o->took = true;  // its taken table may hold what it took before
  o->renewed = absl::Now();
  Owned* raw = o.get();
  owned_[process_id] = std::move(o);
  return raw;
}

absl::StatusOr<LunStore::Owned*> LunStore::Claim(
    const std::string& process_id) {
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  // A process that comes back under the id it had (a restarted mirror) takes
  // its slot back, with what it wrote there, once the last holder is gone.
  for (const LunSlotClaim& c : claims) {
    if (process_id.empty() || c.claim.process_id != process_id ||
        !HolderIsGone(c.claim)) {
      continue;
    }
    DW_ASSIGN_OR_RETURN(Owned * back, TakeBack(c, process_id));
    if (back != nullptr) return back;
  }
  std::vector<std::optional<LunClaim>> by_slot(geometry_.slots);
  for (const LunSlotClaim& c : claims) by_slot[c.slot] = c.claim;
  // Free slots first, then released or expired ones, the longest idle first.
  std::vector<uint32_t> candidates;
  for (uint32_t i = 0; i < geometry_.slots; ++i) {
    if (!by_slot[i]) candidates.push_back(i);
  }
  std::vector<uint32_t> stale;
  for (const LunSlotClaim& c : claims) {
    if (Reclaimable(c.claim)) stale.push_back(c.slot);
  }
  std::sort(stale.begin(), stale.end(), [&](uint32_t a, uint32_t b) {
    return by_slot[a]->renewed_ns < by_slot[b]->renewed_ns;
  });
  candidates.insert(candidates.end(), stale.begin(), stale.end());
  for (uint32_t slot : candidates) {
    const uint64_t at = geometry_.claim_offset(slot);
    // Another process of this host may be claiming it right now.
    if (!device_->LockRange(at, kLunBlock).ok()) continue;
    // Re-read under the lock: it may have been claimed since the listing.
    DW_ASSIGN_OR_RETURN(std::string now_block, device_->Read(at, kLunBlock));
    std::optional<LunClaim> now = DecodeClaim(now_block);
    if (now && now->state != LunClaim::kFree &&
        (!by_slot[slot] || now->nonce != by_slot[slot]->nonce)) {
      device_->UnlockRange(at, kLunBlock).IgnoreError();
      continue;
    }
    auto o = std::make_unique<Owned>();
    o->slot = slot;
    o->claim = ClaimFor(process_id, RandomNonZero());
    DW_ASSIGN_OR_RETURN(bool placed, PlaceClaim(slot, o->claim));
    if (!placed) {
      device_->UnlockRange(at, kLunBlock).IgnoreError();
      continue;  // another host won the slot
    }
    // A fresh start: the previous owner's map and outbox go. Its heartbeat
    // copies carry its nonce and are ignored from now on.
    o->map.assign(geometry_.extents_per_slot, LunExtentEntry{});
    o->cells.assign(geometry_.outbox_cells, LunCell{});
    DW_RETURN_IF_ERROR(device_->Write(geometry_.map_offset(slot),
                                      std::string(geometry_.map_bytes(), 0)));
    DW_RETURN_IF_ERROR(device_->Write(
        geometry_.cell_offset(slot, 0),
        std::string(uint64_t{geometry_.outbox_cells} * kLunBlock, 0)));
    DW_RETURN_IF_ERROR(device_->Write(geometry_.taken_offset(slot),
                                      std::string(kLunBlock, 0)));
    o->renewed = absl::Now();
    Owned* raw = o.get();
    owned_[process_id] = std::move(o);
    return raw;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      device_->path(), ": all ", geometry_.slots,
      " slots are claimed by live processes (format with more --slots, or "
      "wait for released ones: a lease is ",
      absl::FormatDuration(options_.lease), ")"));
}

absl::StatusOr<LunStore::Owned*> LunStore::Own(const std::string& requested) {
  ForgetParentsSlots();
  if (requested.empty() && channel_slot_ != nullptr) {
    DW_RETURN_IF_ERROR(channel_slot_->lost);
    DW_RETURN_IF_ERROR(RenewLocked(*channel_slot_, false));
    return channel_slot_;
  }
  const std::string& process_id =
      requested.empty() ? options_.slot_id : requested;
  auto it = owned_.find(process_id);
  if (it == owned_.end() && channel_slot_ != nullptr &&
      channel_slot_->claim.process_id.empty()) {
    // The channel slot was claimed before the process had a name: it takes
    // this one.
    auto node = owned_.extract("");
    channel_slot_->claim.process_id = process_id;
    node.key() = process_id;
    owned_.insert(std::move(node));
    DW_RETURN_IF_ERROR(RenewLocked(*channel_slot_, true));
    return channel_slot_;
  }
  Owned* o = nullptr;
  if (it != owned_.end()) {
    o = it->second.get();
  } else {
    DW_ASSIGN_OR_RETURN(o, Claim(process_id));
  }
  if (channel_slot_ == nullptr &&
      (options_.slot_id.empty() || process_id == options_.slot_id)) {
    channel_slot_ = o;
  }
  DW_RETURN_IF_ERROR(o->lost);
  DW_RETURN_IF_ERROR(RenewLocked(*o, false));
  return o;
}

absl::Status LunStore::RenewLocked(Owned& o, bool force) {
  DW_RETURN_IF_ERROR(o.lost);
  if (!force && absl::Now() - o.renewed < options_.lease / 8) {
    return absl::OkStatus();
  }
  const uint64_t at = geometry_.claim_offset(o.slot);
  DW_ASSIGN_OR_RETURN(std::string block, device_->Read(at, kLunBlock));
  std::optional<LunClaim> now = DecodeClaim(block);
  if (!now || now->nonce != o.claim.nonce ||
      now->claimed_ns != o.claim.claimed_ns) {
    o.lost = absl::FailedPreconditionError(absl::StrCat(
        Where(o.slot), ": claimed by another process",
        now ? absl::StrCat(" (node ", now->node, ", pid ", now->pid, ")") : "",
        " while this one (pid ", getpid(),
        ") held it: two processes claim one slot"));
    return o.lost;
  }
  o.claim.renewed_ns = LunNowNs();
  DW_RETURN_IF_ERROR(device_->Write(at, EncodeClaim(o.claim)));
  o.renewed = absl::Now();
  return absl::OkStatus();
}

absl::Status LunStore::Renew() {
  absl::MutexLock lock(&mu_);
  ForgetParentsSlots();
  for (auto& [id, o] : owned_) DW_RETURN_IF_ERROR(RenewLocked(*o, false));
  return absl::OkStatus();
}

absl::Status LunStore::WriteEntry(Owned& o, uint32_t index) {
  const uint32_t align = device_->align();
  const uint64_t at =
      geometry_.map_offset(o.slot) + index * kLunExtentEntrySize;
  const uint64_t unit = at / align * align;
  const uint32_t first =
      (unit - geometry_.map_offset(o.slot)) / kLunExtentEntrySize;
  std::string bytes(align, '\0');
  for (uint32_t j = first;
       j < o.map.size() && (j - first) * kLunExtentEntrySize < align; ++j) {
    EncodeExtentEntry(o.map[j],
                      bytes.data() + (j - first) * kLunExtentEntrySize);
  }
  return device_->Write(unit, bytes);
}

absl::StatusOr<std::vector<LunExtent>> LunStore::OpenChannel(
    const std::string& name, uint32_t* slot) {
  absl::MutexLock lock(&mu_);
  ForgetParentsSlots();
  if (writers_.contains(name)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "channel ", name, " already has a writer in this process"));
  }
  DW_ASSIGN_OR_RETURN(Owned * o, Own(""));
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  for (const LunSlotClaim& c : claims) {
    if (c.slot == o->slot || !Live(c.claim)) continue;
    DW_ASSIGN_OR_RETURN(std::vector<LunExtent> theirs,
                        ReadChannel(c.slot, name));
    if (!theirs.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "channel ", name, " already has a writer (", Where(c.slot), ", node ",
          c.claim.node, ", pid ", c.claim.pid, ")"));
    }
  }
  writers_.insert(name);
  *slot = o->slot;
  std::vector<LunExtent> out;
  for (uint32_t j = 0; j < o->map.size(); ++j) {
    if (o->map[j].generation != 0 && o->map[j].name == name)
      out.push_back({j, o->map[j]});
  }
  std::sort(out.begin(), out.end(), [](const LunExtent& a, const LunExtent& b) {
    return a.entry.segment < b.entry.segment;
  });
  return out;
}

void LunStore::CloseChannel(const std::string& name) {
  absl::MutexLock lock(&mu_);
  writers_.erase(name);
}

absl::StatusOr<LunExtent> LunStore::Allocate(const std::string& name,
                                             uint64_t segment,
                                             uint64_t first_offset) {
  absl::MutexLock lock(&mu_);
  DW_ASSIGN_OR_RETURN(Owned * o, Own(""));
  // A channel's extents share its birth; its first extent draws one.
  uint64_t birth = 0;
  for (const LunExtentEntry& e : o->map) {
    if (e.generation != 0 && e.name == name) birth = e.birth;
  }
  if (birth == 0) birth = RandomNonZero();
  for (uint32_t j = 0; j < o->map.size(); ++j) {
    if (o->map[j].generation != 0) continue;
    o->map[j] =
        LunExtentEntry{RandomNonZero(), segment, first_offset, name, birth};
    absl::Status st = WriteEntry(*o, j);
    if (!st.ok()) {
      o->map[j] = LunExtentEntry{};
      return st;
    }
    return LunExtent{j, o->map[j]};
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      Where(o->slot), ": all ", o->map.size(), " extents of ",
      geometry_.extent_bytes,
      " bytes are in use (the channels' records are not yet acknowledged)"));
}

absl::Status LunStore::Free(uint32_t index) {
  absl::MutexLock lock(&mu_);
  DW_ASSIGN_OR_RETURN(Owned * o, Own(""));
  const LunExtentEntry old = o->map[index];
  o->map[index] = LunExtentEntry{};
  absl::Status st = WriteEntry(*o, index);
  if (!st.ok()) o->map[index] = old;
  return st;
}

absl::Status LunStore::RemoveChannel(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ForgetParentsSlots();
  if (writers_.contains(name)) {
    return absl::FailedPreconditionError(
        absl::StrCat("channel ", name, " has a writer in this process"));
  }
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, ReadClaims());
  const uint32_t mine = channel_slot_ ? channel_slot_->slot : geometry_.slots;
  for (const LunSlotClaim& c : claims) {
    if (c.slot == mine || !Live(c.claim)) continue;
    DW_ASSIGN_OR_RETURN(std::vector<LunExtent> theirs,
                        ReadChannel(c.slot, name));
    if (!theirs.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("channel ", name, " belongs to a live process (",
                       Where(c.slot), ", node ", c.claim.node, ", pid ",
                       c.claim.pid, "): only its process can remove it"));
    }
  }
  // A dead process's channels go when its slot is claimed again.
  if (channel_slot_ == nullptr) return absl::OkStatus();
  Owned& o = *channel_slot_;
  for (uint32_t j = 0; j < o.map.size(); ++j) {
    if (o.map[j].generation == 0 || o.map[j].name != name) continue;
    o.map[j] = LunExtentEntry{};
    DW_RETURN_IF_ERROR(WriteEntry(o, j));
  }
  return absl::OkStatus();
}

}  // namespace diskwire::storage
