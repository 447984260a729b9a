#include "core/fake_os_calls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace diskwire {
namespace {

// What libc returned, with its errno.
SysResult Of(ssize_t value) {
  return value == -1 ? SysResult::Fail(errno) : SysResult::Ok(value);
}

}  // namespace

void FakeOsCalls::FailOn(Call call, int fd, int error, int times) {
  absl::MutexLock lock(&mu_);
  rules_.push_back({call, fd, error, times});
}

void FakeOsCalls::Stall(int fd, int64_t silent_for_ns) {
  absl::MutexLock lock(&mu_);
  stalled_since_ns_[fd] = clock_->NowNs() - silent_for_ns;
}

void FakeOsCalls::Clear() {
  absl::MutexLock lock(&mu_);
  rules_.clear();
  stalled_since_ns_.clear();
}

int FakeOsCalls::Count(Call call, int fd) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [key, count] : counts_) {
    if (key.first == call && (fd == kAnyFd || key.second == fd)) n += count;
  }
  return n;
}

int FakeOsCalls::Scripted(Call call, int fd) {
  absl::MutexLock lock(&mu_);
  ++counts_[{call, fd}];
  for (auto it = rules_.begin(); it != rules_.end(); ++it) {
    if (it->call != call || (it->fd != kAnyFd && it->fd != fd)) continue;
    const int error = it->error;
    if (it->remaining > 0 && --it->remaining == 0) rules_.erase(it);
    return error;
  }
  return 0;
}

SysResult FakeOsCalls::SocketPair(int domain, int type, int protocol,
                                  int fds[2]) {
  return Of(::socketpair(domain, type, protocol, fds));
}

SysResult FakeOsCalls::Socket(int domain, int type, int protocol) {
  return Of(::socket(domain, type, protocol));
}

SysResult FakeOsCalls::Bind(int fd, const sockaddr* addr, socklen_t len) {
  return Of(::bind(fd, addr, len));
}

SysResult FakeOsCalls::Listen(int fd, int backlog) {
  return Of(::listen(fd, backlog));
}

SysResult FakeOsCalls::Connect(int fd, const sockaddr* addr, socklen_t len) {
  if (int error = Scripted(Call::kConnect, fd)) return SysResult::Fail(error);
  return Of(::connect(fd, addr, len));
}

SysResult FakeOsCalls::Accept4(int fd, sockaddr* addr, socklen_t* len,
                               int flags) {
  return Of(::accept4(fd, addr, len, flags));
}

SysResult FakeOsCalls::Close(int fd) {
  {
    absl::MutexLock lock(&mu_);
    stalled_since_ns_.erase(fd);  // the number may name another socket next
  }
  return Of(::close(fd));
}

SysResult FakeOsCalls::Dup3(int oldfd, int newfd, int flags) {
  return Of(::dup3(oldfd, newfd, flags));
}

SysResult FakeOsCalls::Fcntl(int fd, int cmd, int arg) {
  return Of(::fcntl(fd, cmd, arg));
}

SysResult FakeOsCalls::Ioctl(int fd, unsigned long request, int* arg) {
  SysResult r = Of(::ioctl(fd, request, arg));
  if (r.ok() && request == SIOCOUTQ) {
    absl::MutexLock lock(&mu_);
    if (stalled_since_ns_.count(fd)) *arg = std::max(*arg, 1);
  }
  return r;
}

SysResult FakeOsCalls::SendMsg(int fd, const msghdr* msg, int flags) {
  if (int error = Scripted(Call::kSendMsg, fd)) return SysResult::Fail(error);
  return Of(::sendmsg(fd, msg, flags));
}

SysResult FakeOsCalls::RecvMsg(int fd, msghdr* msg, int flags) {
  if (int error = Scripted(Call::kRecvMsg, fd)) return SysResult::Fail(error);
  return Of(::recvmsg(fd, msg, flags));
}

SysResult FakeOsCalls::SendTo(int fd, const void* buf, size_t len, int flags,
                              const sockaddr* to, socklen_t to_len) {
  if (int error = Scripted(Call::kSendMsg, fd)) return SysResult::Fail(error);
  if (int error = Scripted(Call::kSendTo, fd)) return SysResult::Fail(error);
  return Of(::sendto(fd, buf, len, flags, to, to_len));
}

SysResult FakeOsCalls::RecvFrom(int fd, void* buf, size_t len, int flags,
                                sockaddr* from, socklen_t* from_len) {
  if (int error = Scripted(Call::kRecvMsg, fd)) return SysResult::Fail(error);
  if (int error = Scripted(Call::kRecvFrom, fd)) return SysResult::Fail(error);
  return Of(::recvfrom(fd, buf, len, flags, from, from_len));
}

SysResult FakeOsCalls::Read(int fd, void* buf, size_t len) {
  if (int error = Scripted(Call::kRead, fd)) return SysResult::Fail(error);
  return Of(::read(fd, buf, len));
}

SysResult FakeOsCalls::Write(int fd, const void* buf, size_t len) {
  if (int error = Scripted(Call::kWrite, fd)) return SysResult::Fail(error);
  return Of(::write(fd, buf, len));
}

SysResult FakeOsCalls::Shutdown(int fd, int how) {
  return Of(::shutdown(fd, how));
}

SysResult FakeOsCalls::GetSockOpt(int fd, int level, int name, void* val,
                                  socklen_t* len) {
  SysResult r = Of(::getsockopt(fd, level, name, val, len));
  if (r.ok() && level == IPPROTO_TCP && name == TCP_INFO &&
      *len >= sizeof(tcp_info)) {
    absl::MutexLock lock(&mu_);
    auto it = stalled_since_ns_.find(fd);
    if (it != stalled_since_ns_.end()) {
      const int64_t silent_ms = (clock_->NowNs() - it->second) / kNsPerMs;
      auto* info = static_cast<tcp_info*>(val);
      info->tcpi_last_ack_recv = static_cast<uint32_t>(
          std::max<int64_t>(info->tcpi_last_ack_recv, silent_ms));
    }
  }
  return r;
}

SysResult FakeOsCalls::SetSockOpt(int fd, int level, int name, const void* val,
                                  socklen_t len) {
  return Of(::setsockopt(fd, level, name, val, len));
}

SysResult FakeOsCalls::GetSockName(int fd, sockaddr* addr, socklen_t* len) {
  return Of(::getsockname(fd, addr, len));
}

SysResult FakeOsCalls::GetPeerName(int fd, sockaddr* addr, socklen_t* len) {
  return Of(::getpeername(fd, addr, len));
}

SysResult FakeOsCalls::Poll(pollfd* fds, nfds_t nfds, int timeout_ms) {
  if (nfds > 0) {
    if (int error = Scripted(Call::kPoll, fds[0].fd))
      return SysResult::Fail(error);
  }
  return Of(::poll(fds, nfds, timeout_ms));
}

SysResult FakeOsCalls::EpollCreate1(int flags) {
  return Of(::epoll_create1(flags));
}

SysResult FakeOsCalls::EpollCtl(int epfd, int op, int fd, epoll_event* event) {
  return Of(::epoll_ctl(epfd, op, fd, event));
}

SysResult FakeOsCalls::EpollWait(int epfd, epoll_event* events, int maxevents,
                                 int timeout_ms) {
  return Of(::epoll_wait(epfd, events, maxevents, timeout_ms));
}

SysResult FakeOsCalls::EventFd(unsigned int initval, int flags) {
  return Of(::eventfd(initval, flags));
}

}  // namespace diskwire
