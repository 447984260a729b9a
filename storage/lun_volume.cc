#include "storage/lun_volume.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"
#include "storage/file_ops.h"
#include "storage/lun_channel.h"
#include "storage/lun_store.h"

namespace diskwire::storage {
namespace {

// Nothing signals a write another host made to a LUN: the watcher is a timer
// at the poll interval, and every tick is "every channel may have changed";
// the inbox is looked at every kInboxInterval.
constexpr absl::Duration kInboxInterval = absl::Milliseconds(20);

class LunWatcher final : public VolumeWatcher {
 public:
  LunWatcher(LunStore* store, int fd, absl::Duration interval)
      : store_(*store), fd_(fd), interval_(interval) {}
  ~LunWatcher() override { close(fd_); }
  int fd() const override { return fd_; }
  absl::Duration poll_interval() const override { return interval_; }
  absl::Status Watch(const std::string&) override { return absl::OkStatus(); }
  absl::Status Unwatch(const std::string&) override { return absl::OkStatus(); }
  absl::Status WatchInbox(const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Drain(Changes* out) override {
    *out = Changes{};
    uint64_t ticks = 0;
    if (read(fd_, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN) {
      return ErrnoError(errno, "read the LUN watcher's timer");
    }
    if (ticks > 0 || absl::Now() - last_ >= interval_) {
      last_ = absl::Now();
      out->everything = true;
      // Taking the inbox reads every live slot's outbox: not at every tick
      // of a fast poll, which would cost a SAN thousands of reads a second.
      if (last_ - last_inbox_ >= std::max(interval_, kInboxInterval)) {
        last_inbox_ = last_;
        out->inbox = true;
      }
      // The loop drains at every tick: a good place to keep claims alive.
      DW_RETURN_IF_ERROR(store_.Renew());
    }
    return absl::OkStatus();
  }

 private:
  LunStore& store_;
  const int fd_;
  const absl::Duration interval_;
  absl::Time last_ = absl::InfinitePast();
  absl::Time last_inbox_ = absl::InfinitePast();
};

class LunVolume final : public Volume {
 public:
  explicit LunVolume(std::unique_ptr<LunStore> store)
      : store_(std::move(store)) {}

  absl::StatusOr<std::unique_ptr<ChannelWriter>> OpenWriter(
      const std::string& channel, const WriterOptions& options) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    return OpenLunChannelWriter(store_.get(), channel, options);
  }
  absl::StatusOr<std::unique_ptr<ChannelReader>> OpenReader(
      const std::string& channel, uint64_t from_stream_offset) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    return NewLunChannelReader(store_.get(), channel, from_stream_offset);
  }
  absl::Status RemoveChannel(const std::string& channel) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    return store_->RemoveChannel(channel);
  }
  absl::StatusOr<std::vector<std::string>> ListChannels() override {
    return store_->ListChannels();
  }
  absl::StatusOr<ChannelStat> StatChannel(const std::string& channel) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    uint32_t slot = 0;
    DW_ASSIGN_OR_RETURN(std::vector<LunExtent> extents,
                        store_->FindChannel(channel, &slot));
    if (extents.empty()) {
      return absl::NotFoundError(absl::StrCat("no channel ", channel));
    }
    // Trimming frees a channel's oldest extents: the first one left starts
    // where the trimmed records ended.
    const LunExtentEntry& oldest = extents.front().entry;
    return ChannelStat{oldest.birth,
                       oldest.segment == 1 ? 0 : oldest.first_offset};
  }

  absl::Status PublishHeartbeat(const std::string& process_id,
                                const std::string& payload) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    return store_->PublishHeartbeat({process_id, "", 0, 0, 0, payload});
  }
  absl::Status CopyHeartbeat(const Heartbeat& h) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(h.process_id));
    return store_->PublishHeartbeat(h);
  }
  absl::StatusOr<HeartbeatListing> ListHeartbeats() override;
  absl::Status RemoveHeartbeat(const std::string& process_id) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    return store_->RemoveHeartbeat(process_id);
  }

  absl::Status PostToInbox(const std::string& dst_process_id,
                           const std::string& name,
                           const std::string& payload) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(dst_process_id));
    DW_RETURN_IF_ERROR(ValidateChannelName(name, "inbox message name"));
    return store_->PostToInbox(dst_process_id, name, payload);
  }
  absl::Status DeliverInbox(
      const std::string& process_id,
      absl::FunctionRef<absl::Status(InboxMessage)> deliver,
      std::vector<std::string>* /*problems*/) override {
    // A cell that does not decode is no message (a torn or free cell).
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    return store_->DeliverInbox(process_id, deliver);
  }
  absl::StatusOr<std::vector<std::string>> ListInboxes() override {
    return store_->ListInboxes();
  }

  std::vector<int> HeldFds() const override { return {store_->device().fd()}; }
  absl::Status KeepAlive() override { return store_->Renew(); }
  // The lock is held from one call to the next, across fork().
  void BeforeFork() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    store_->BeforeFork();
  }
  void AfterForkParent() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    store_->AfterForkParent();
  }
  void AfterForkChild() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    store_->AfterForkChild();
  }

  absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewWatcher(
      const WatcherOptions& options) override {
    if (options.mode == WatcherOptions::Mode::kInotify) {
      return absl::InvalidArgumentError(
          absl::StrCat(store_->device().path(),
                       ": a LUN volume has no change notification; poll it"));
    }
    const absl::Duration interval =
        std::max(options.poll_interval, absl::Milliseconds(1));
    const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "timerfd_create");
    itimerspec its = {};
    its.it_interval = absl::ToTimespec(interval);
    its.it_value = its.it_interval;
    if (timerfd_settime(fd, 0, &its, nullptr) != 0) {
      const int err = errno;
      close(fd);
      return ErrnoError(err, "timerfd_settime");
    }
    return std::make_unique<LunWatcher>(store_.get(), fd, interval);
  }

 private:
  const std::unique_ptr<LunStore> store_;
};

absl::StatusOr<HeartbeatListing> LunVolume::ListHeartbeats() {
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, store_->ReadClaims());
  const LunGeometry& g = store_->geometry();
  LunDevice& dev = store_->device();
  HeartbeatListing out;
  for (const LunSlotClaim& c : claims) {
    // A process that stopped renewing its claim a lease ago is gone: its
    // slot is anyone's, and its heartbeat, however recent, means nothing.
    if (c.claim.state != LunClaim::kClaimed || store_->Reclaimable(c.claim))
      continue;
    std::optional<LunHeartbeat> best;
    for (int copy : {0, 1}) {
      const uint64_t at = g.heartbeat_offset(c.slot, copy);
      DW_ASSIGN_OR_RETURN(std::string bytes, dev.Read(at, kLunBlock));
      size_t total = 0;
      std::optional<LunHeartbeat> h = DecodeHeartbeat(bytes, &total);
      if (!h && total > bytes.size() && total <= g.heartbeat_bytes) {
        DW_ASSIGN_OR_RETURN(bytes, dev.Read(at, store_->RoundUp(total)));
        h = DecodeHeartbeat(bytes, &total);
      }
      // A copy written under an earlier claim of the slot is not this one's.
      if (h && h->nonce == c.claim.nonce &&
          (!best || h->sequence > best->sequence)) {
        best = std::move(h);
      }
    }
    if (!best) continue;
    out.heartbeats.push_back({std::move(best->process_id),
                              std::move(best->node), best->pid, best->time_ns,
                              best->sequence, std::move(best->payload)});
  }
  std::sort(out.heartbeats.begin(), out.heartbeats.end(),
            [](const Heartbeat& a, const Heartbeat& b) {
              return a.process_id < b.process_id;
            });
  return out;
}

}  // namespace

absl::StatusOr<LunGeometry> ReadLunGeometry(const std::string& device) {
  DW_ASSIGN_OR_RETURN(std::unique_ptr<LunDevice> dev,
                      LunDevice::Open(device, /*writable=*/false));
  if (dev->size() < kLunBlock) {
    return absl::FailedPreconditionError(
        absl::StrCat(device, ": not a diskwire volume (", dev->size(),
                     " bytes; run diskwire format)"));
  }
  DW_ASSIGN_OR_RETURN(std::string block, dev->Read(0, kLunBlock));
  absl::StatusOr<LunGeometry> g = DecodeSuperblock(block);
  if (absl::IsNotFound(g.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        device,
        ": not a diskwire volume (no superblock; run diskwire format)"));
  }
  if (!g.ok()) {
    return absl::Status(g.status().code(),
                        absl::StrCat(device, ": ", g.status().message()));
  }
  if (g->device_bytes > dev->size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(device, ": formatted for ", g->device_bytes,
                     " bytes but holds only ", dev->size()));
  }
  return g;
}

absl::StatusOr<LunUsage> ReadLunUsage(const std::string& device) {
  DW_ASSIGN_OR_RETURN(LunGeometry g, ReadLunGeometry(device));
  DW_ASSIGN_OR_RETURN(std::unique_ptr<LunDevice> dev,
                      LunDevice::Open(device, /*writable=*/false));
  LunUsage u;
  u.align = dev->align();
  u.device_bytes = dev->size();
  u.geometry = g;
  const LunStore store(std::move(dev), std::move(g), LunStoreOptions{});
  DW_ASSIGN_OR_RETURN(std::vector<LunSlotClaim> claims, store.ReadClaims());
  for (const LunSlotClaim& c : claims) {
    ++(store.Live(c.claim) ? u.live_slots : u.held_slots);
    DW_ASSIGN_OR_RETURN(uint32_t used, store.ExtentsInUse(c.slot));
    u.extents_in_use += used;
  }
  return u;
}

absl::StatusOr<std::unique_ptr<Volume>> OpenLunVolume(
    const std::string& device, const LunVolumeOptions& options) {
  if (!options.mac_key.empty() && options.mac_key.size() != kMacKeySize) {
    return absl::InvalidArgumentError("MAC key must be 32 bytes");
  }
  DW_ASSIGN_OR_RETURN(LunGeometry g, ReadLunGeometry(device));
  const bool keyed = g.flags & kLunFlagKeyed;
  if (keyed != !options.mac_key.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        device, keyed
                    ? ": formatted --keyed, and no key is configured "
                      "(DISKWIRE_KEY_FILE)"
                    : ": formatted without --keyed, and a key is configured"));
  }
  DW_ASSIGN_OR_RETURN(std::unique_ptr<LunDevice> dev,
                      LunDevice::Open(device, /*writable=*/true));
  LunStoreOptions so;
  so.node = options.node;
  if (so.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    so.node = host;
  }
  so.mac_key = options.mac_key;
  so.lease = options.lease;
  so.slot_id = options.slot_id;
  return std::make_unique<LunVolume>(
      std::make_unique<LunStore>(std::move(dev), std::move(g), std::move(so)));
}

}  // namespace diskwire::storage
