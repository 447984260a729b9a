#include "storage/dir_watcher.h"

#include <sys/inotify.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "storage/dir_layout.h"

namespace diskwire::storage {
namespace {

constexpr uint32_t kDirEvents = IN_MODIFY | IN_CREATE | IN_MOVED_TO |
                                IN_CLOSE_WRITE | IN_DELETE | IN_ONLYDIR;

class DirVolumeWatcher final : public VolumeWatcher {
 public:
  DirVolumeWatcher(const DirContext& ctx, int fd, bool inotify, bool poll,
                   absl::Duration interval)
      : ctx_(ctx),
        fd_(fd),
        use_inotify_(inotify),
        poll_(poll),
        interval_(interval) {}
  ~DirVolumeWatcher() override { close(fd_); }

  int fd() const override { return fd_; }
  absl::Duration poll_interval() const override {
    return poll_ ? interval_ : absl::InfiniteDuration();
  }

  absl::Status Watch(const std::string& channel) override {
    DW_RETURN_IF_ERROR(ValidateChannelName(channel));
    if (channel_wd_.count(channel) || pending_.count(channel)) {
      return absl::OkStatus();
    }
    if (!use_inotify_) {
      pending_.insert(channel);  // remembered only
      return absl::OkStatus();
    }
    // Watch the parent first, so a channel created meanwhile is not missed.
    if (channels_wd_ < 0) {
      DW_ASSIGN_OR_RETURN(channels_wd_,
                          AddWatch(ctx_.root + "/" + kChannelsDir,
                                   IN_CREATE | IN_MOVED_TO | IN_ONLYDIR));
    }
    return TryWatchChannel(channel);
  }

  absl::Status Unwatch(const std::string& channel) override {
    pending_.erase(channel);
    auto it = channel_wd_.find(channel);
    if (it == channel_wd_.end()) return absl::OkStatus();
    inotify_rm_watch(fd_, it->second);
    targets_.erase(it->second);
    channel_wd_.erase(it);
    return absl::OkStatus();
  }

  absl::Status WatchInbox(const std::string& process_id) override {
    DW_RETURN_IF_ERROR(ValidateProcessId(process_id));
    const std::string dir = ctx_.root + "/" + kInboxDir + "/" + process_id;
    DW_RETURN_IF_ERROR(ctx_.ops->MakeDir(dir));
    if (!use_inotify_) return absl::OkStatus();
    DW_ASSIGN_OR_RETURN(int wd, AddWatch(dir, kDirEvents));
    inbox_wd_ = wd;
    return absl::OkStatus();
  }

  absl::Status Drain(Changes* out) override {
    out->everything = false;
    out->inbox = false;
    out->channels.clear();
    std::set<std::string> changed;
    alignas(inotify_event) char buf[64 * 1024];
    for (;;) {
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) return ErrnoError(errno, "read inotify");
      for (ssize_t off = 0; off < n;) {
        const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
        off += sizeof(inotify_event) + e->len;
        if (e->mask & IN_Q_OVERFLOW) {
          out->everything = true;
          continue;
        }
        if (e->wd == inbox_wd_) {
          out->inbox = true;
          continue;
        }
        if (e->wd == channels_wd_ && e->len > 0) {
          const std::string name(e->name);
          if (pending_.count(name) && TryWatchChannel(name).ok()) {
            changed.insert(name);
          }
          continue;
        }
        auto t = targets_.find(e->wd);
        if (t == targets_.end()) continue;
        changed.insert(t->second);
        if (e->mask & IN_IGNORED) {  // the channel directory went away
          channel_wd_.erase(t->second);
          pending_.insert(t->second);
          targets_.erase(t);
        }
      }
    }
    if (poll_ && absl::Now() - last_poll_ >= interval_) {
      last_poll_ = absl::Now();
      out->everything = true;
      out->inbox = true;
    }
    out->channels.assign(changed.begin(), changed.end());
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<int> AddWatch(const std::string& path, uint32_t mask) {
    // A link planted in the volume is never followed, not even to watch it.
    const int wd = inotify_add_watch(fd_, path.c_str(), mask | IN_DONT_FOLLOW);
    if (wd >= 0) return wd;
    if (errno == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "inotify watch on ", path,
          ": limit reached (raise fs.inotify.max_user_watches, or use "
          "WatcherOptions::Mode::kPoll)"));
    }
    return ErrnoError(errno, absl::StrCat("inotify watch on ", path));
  }

  absl::Status TryWatchChannel(const std::string& channel) {
    absl::StatusOr<int> wd = AddWatch(ctx_.ChannelDir(channel), kDirEvents);
    if (absl::IsNotFound(wd.status())) {
      pending_.insert(channel);  // picked up when the directory appears
      return absl::OkStatus();
    }
    DW_RETURN_IF_ERROR(wd.status());
    pending_.erase(channel);
    channel_wd_[channel] = *wd;
    targets_[*wd] = channel;
    return absl::OkStatus();
  }

  const DirContext ctx_;
  const int fd_;
  const bool use_inotify_;
  const bool poll_;
  const absl::Duration interval_;
  absl::Time last_poll_ = absl::InfinitePast();
  int channels_wd_ = -1;
  int inbox_wd_ = -1;
  std::map<std::string, int> channel_wd_;
  std::map<int, std::string> targets_;
  std::set<std::string> pending_;  // watched, directory not there yet
};

}  // namespace

absl::StatusOr<bool> IsNetworkFilesystem(const std::string& path) {
  struct statfs st;
  if (statfs(path.c_str(), &st) != 0) {
    return ErrnoError(errno, absl::StrCat("statfs ", path));
  }
  switch (static_cast<uint64_t>(st.f_type)) {
    case 0x6969:      // NFS
    case 0x517B:      // SMB
    case 0xFF534D42:  // CIFS
    case 0xFE534D42:  // SMB2
    case 0x00C36400:  // CephFS
    case 0x65735546:  // FUSE (GlusterFS, bindfs, sshfs...)
    case 0x5346414F:  // AFS
    case 0x01161970:  // GFS2
    case 0x7461636F:  // OCFS2
    case 0x01021997:  // 9P
    case 0x0BD00BD0:  // Lustre
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::unique_ptr<VolumeWatcher>> NewDirVolumeWatcher(
    const DirContext& ctx, const WatcherOptions& options) {
  using Mode = WatcherOptions::Mode;
  bool poll = options.mode == Mode::kPoll;
  if (options.mode == Mode::kAuto) {
    DW_ASSIGN_OR_RETURN(poll, IsNetworkFilesystem(ctx.root));
  }
  if (poll && options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("poll interval must be positive");
  }
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    return ErrnoError(errno,
                      "inotify_init1 (raise "
                      "fs.inotify.max_user_instances?)");
  }
  return std::make_unique<DirVolumeWatcher>(
      ctx, fd, options.mode != Mode::kPoll, poll, options.poll_interval);
}

}  // namespace diskwire::storage
