// File: shim/data_hooks.cc
// The data path: every read/write-family call on an owned fd becomes one
// Engine::SendMsg or Engine::RecvMsg, and every send on a UDP socket the
// engine looks at asks Engine::CarryDatagram first (receives need nothing:
// datagrams that crossed the volume arrive in the socket); everything else
// passes straight through.

#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <optional>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/hooks.h"
#include "shim/real_calls.h"

namespace diskwire::shim {
namespace {

ssize_t SendOwned(Engine* engine, int fd, const iovec* iov, size_t iovcnt,
                  int flags, const sockaddr* to, socklen_t to_len) {
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = to == nullptr ? 0 : to_len;
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = iovcnt;
  InsideDiskwire inside;
  return ReturnErrno(engine->SendMsg(fd, &msg, flags));
}

ssize_t RecvOwned(Engine* engine, int fd, const iovec* iov, size_t iovcnt,
                  int flags, sockaddr* from, socklen_t* from_len) {
  msghdr msg{};
  msg.msg_name = from;
  msg.msg_namelen = from != nullptr && from_len != nullptr ? *from_len : 0;
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = iovcnt;
  InsideDiskwire inside;
  const ssize_t n = ReturnErrno(engine->Recv(fd, &msg, flags));
  if (n >= 0 && from != nullptr && from_len != nullptr) {
    *from_len = msg.msg_namelen;
  }
  return n;
}

// EPERM: a firewall rule of this host drops the datagram (iptables OUTPUT
// DROP). The engine carries it only to a diskwire peer, as for a missing route.
bool NetworkRefused(int error) {
  return error == ENETUNREACH || error == EHOSTUNREACH || error == ENETDOWN ||
         error == EPERM;
}

// A send on a UDP socket the engine looks at: carried over the volume when
// its path is down; otherwise `real`, the application's own call, sends it
// (the healthy path costs one lock-free check), and a refusal by the network
// (no route, the link down) gives the engine a second look.
template <typename RealSend>
ssize_t SendDatagram(Engine* engine, int fd, const msghdr& msg, int flags,
                     RealSend real) {
  {
    InsideDiskwire inside;
    if (std::optional<SysResult> carried =
            engine->CarryDatagram(fd, &msg, flags, 0))
      return ReturnErrno(*carried);
  }
  const ssize_t sent = real();
  if (sent >= 0 || !NetworkRefused(errno)) return sent;
  const int refused = errno;
  InsideDiskwire inside;
  if (std::optional<SysResult> carried =
          engine->CarryDatagram(fd, &msg, flags, refused))
    return ReturnErrno(*carried);
  errno = refused;
  return -1;
}

msghdr OneBuffer(iovec* iov, const sockaddr* to, socklen_t to_len) {
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = to == nullptr ? 0 : to_len;
  msg.msg_iov = iov;
  msg.msg_iovlen = 1;
  return msg;
}

bool BadIovCount(int iovcnt) {
  if (iovcnt >= 0 && iovcnt <= IOV_MAX) return false;
  errno = EINVAL;
  return true;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace
}  // namespace diskwire::shim

using diskwire::Engine;
using diskwire::SysResult;
using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(ssize_t, read, (int fd, void* buf, size_t len)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) return Real().read(fd, buf, len);
  iovec iov{buf, len};
  return RecvOwned(engine, fd, &iov, 1, 0, nullptr, nullptr);
}

DW_HOOK(ssize_t, readv, (int fd, const iovec* iov, int iovcnt)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) return Real().readv(fd, iov, iovcnt);
  if (BadIovCount(iovcnt)) return -1;
  return RecvOwned(engine, fd, iov, iovcnt, 0, nullptr, nullptr);
}

DW_HOOK(ssize_t, recv, (int fd, void* buf, size_t len, int flags)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) return Real().recv(fd, buf, len, flags);
  iovec iov{buf, len};
  return RecvOwned(engine, fd, &iov, 1, flags, nullptr, nullptr);
}

DW_HOOK(ssize_t, recvfrom,
        (int fd, void* buf, size_t len, int flags, sockaddr* from,
         socklen_t* from_len)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) {
    return Real().recvfrom(fd, buf, len, flags, from, from_len);
  }
  iovec iov{buf, len};
  return RecvOwned(engine, fd, &iov, 1, flags, from, from_len);
}

DW_HOOK(ssize_t, recvmsg, (int fd, msghdr* msg, int flags)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) return Real().recvmsg(fd, msg, flags);
  InsideDiskwire inside;
  return ReturnErrno(engine->RecvMsg(fd, msg, flags));
}

// One RecvMsg per message, with recvmmsg(2)'s rules: MSG_WAITFORONE makes
// every message after the first non-blocking; an error after the first message
// ends the batch and the count is returned; the timeout is checked after each
// message and updated to what remains.
DW_HOOK(int, recvmmsg,
        (int fd, mmsghdr* msgs, unsigned int vlen, int flags,
         timespec* timeout)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) return Real().recvmmsg(fd, msgs, vlen, flags, timeout);
  if (timeout != nullptr && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
                             timeout->tv_nsec >= 1000000000)) {
    errno = EINVAL;
    return -1;
  }
  const int64_t deadline =
      timeout == nullptr
          ? 0
          : NowNs() + timeout->tv_sec * 1000000000 + timeout->tv_nsec;
  InsideDiskwire inside;
  unsigned int done = 0;
  int msg_flags = flags & ~MSG_WAITFORONE;
  while (done < vlen) {
    SysResult r = engine->RecvMsg(fd, &msgs[done].msg_hdr, msg_flags);
    if (!r.ok()) {
      if (done == 0) return static_cast<int>(ReturnErrno(r));
      break;
    }
    msgs[done].msg_len = static_cast<unsigned int>(r.value);
    ++done;
    if (flags & MSG_WAITFORONE) msg_flags |= MSG_DONTWAIT;
    if (timeout != nullptr) {
      const int64_t left = deadline - NowNs();
      if (left <= 0) {
        *timeout = {0, 0};
        break;
      }
      *timeout = {static_cast<time_t>(left / 1000000000),
                  static_cast<long>(left % 1000000000)};
    }
  }
  return static_cast<int>(done);
}

DW_HOOK(ssize_t, write, (int fd, const void* buf, size_t len)) {
  Engine* engine = DataEngine(fd);
  iovec iov{const_cast<void*>(buf), len};
  if (engine == nullptr) {
    if (Engine* udp = DatagramEngine(fd)) {
      return SendDatagram(udp, fd, OneBuffer(&iov, nullptr, 0), 0,
                          [&] { return Real().write(fd, buf, len); });
    }
    return Real().write(fd, buf, len);
  }
  return SendOwned(engine, fd, &iov, 1, 0, nullptr, 0);
}

DW_HOOK(ssize_t, writev, (int fd, const iovec* iov, int iovcnt)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) {
    Engine* udp = DatagramEngine(fd);
    if (udp == nullptr) return Real().writev(fd, iov, iovcnt);
    if (BadIovCount(iovcnt)) return -1;
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    return SendDatagram(udp, fd, msg, 0,
                        [&] { return Real().writev(fd, iov, iovcnt); });
  }
  if (BadIovCount(iovcnt)) return -1;
  return SendOwned(engine, fd, iov, iovcnt, 0, nullptr, 0);
}

DW_HOOK(ssize_t, send, (int fd, const void* buf, size_t len, int flags)) {
  Engine* engine = DataEngine(fd);
  iovec iov{const_cast<void*>(buf), len};
  if (engine == nullptr) {
    if (Engine* udp = DatagramEngine(fd)) {
      return SendDatagram(udp, fd, OneBuffer(&iov, nullptr, 0), flags,
                          [&] { return Real().send(fd, buf, len, flags); });
    }
    return Real().send(fd, buf, len, flags);
  }
  return SendOwned(engine, fd, &iov, 1, flags, nullptr, 0);
}

DW_HOOK(ssize_t, sendto,
        (int fd, const void* buf, size_t len, int flags, const sockaddr* to,
         socklen_t to_len)) {
  Engine* engine = DataEngine(fd);
  iovec iov{const_cast<void*>(buf), len};
  if (engine == nullptr) {
    if (Engine* udp = DatagramEngine(fd)) {
      return SendDatagram(udp, fd, OneBuffer(&iov, to, to_len), flags, [&] {
        return Real().sendto(fd, buf, len, flags, to, to_len);
      });
    }
    return Real().sendto(fd, buf, len, flags, to, to_len);
  }
  return SendOwned(engine, fd, &iov, 1, flags, to, to_len);
}

DW_HOOK(ssize_t, sendmsg, (int fd, const msghdr* msg, int flags)) {
  Engine* engine = DataEngine(fd);
  if (engine == nullptr) {
    Engine* udp = DatagramEngine(fd);
    if (udp == nullptr) return Real().sendmsg(fd, msg, flags);
    return SendDatagram(udp, fd, *msg, flags,
                        [&] { return Real().sendmsg(fd, msg, flags); });
  }
  InsideDiskwire inside;
  return ReturnErrno(engine->SendMsg(fd, msg, flags));
}

// One SendMsg (or one datagram's send) per message; an error after the first
// message ends the batch and the count is returned (sendmmsg(2)).
DW_HOOK(int, sendmmsg, (int fd, mmsghdr* msgs, unsigned int vlen, int flags)) {
  Engine* engine = DataEngine(fd);
  Engine* udp = engine == nullptr ? DatagramEngine(fd) : nullptr;
  if (engine == nullptr && udp == nullptr) {
    return Real().sendmmsg(fd, msgs, vlen, flags);
  }
  unsigned int done = 0;
  for (; done < vlen; ++done) {
    if (udp != nullptr) {
      const msghdr& m = msgs[done].msg_hdr;
      const ssize_t n = SendDatagram(
          udp, fd, m, flags, [&] { return Real().sendmsg(fd, &m, flags); });
      if (n < 0) {
        if (done == 0) return -1;
        break;
      }
      msgs[done].msg_len = static_cast<unsigned int>(n);
      continue;
    }
    InsideDiskwire inside;
    SysResult r = engine->SendMsg(fd, &msgs[done].msg_hdr, flags);
    if (!r.ok()) {
      if (done == 0) return static_cast<int>(ReturnErrno(r));
      break;
    }
    msgs[done].msg_len = static_cast<unsigned int>(r.value);
  }
  return static_cast<int>(done);
}

// --- Fortified variants (-D_FORTIFY_SOURCE): check, then the plain hook. ---

DW_HOOK(ssize_t, __read_chk, (int fd, void* buf, size_t len, size_t buflen)) {
  if (DataEngine(fd) == nullptr) {
    return Real().__read_chk(fd, buf, len, buflen);
  }
  if (len > buflen) Real().__chk_fail();
  return dw_hook_read(fd, buf, len);
}

DW_HOOK(ssize_t, __recv_chk,
        (int fd, void* buf, size_t len, size_t buflen, int flags)) {
  if (DataEngine(fd) == nullptr) {
    return Real().__recv_chk(fd, buf, len, buflen, flags);
  }
  if (len > buflen) Real().__chk_fail();
  return dw_hook_recvfrom(fd, buf, len, flags, nullptr, nullptr);
}

DW_HOOK(ssize_t, __recvfrom_chk,
        (int fd, void* buf, size_t len, size_t buflen, int flags,
         sockaddr* from, socklen_t* from_len)) {
  if (DataEngine(fd) == nullptr) {
    return Real().__recvfrom_chk(fd, buf, len, buflen, flags, from, from_len);
  }
  if (len > buflen) Real().__chk_fail();
  return dw_hook_recvfrom(fd, buf, len, flags, from, from_len);
}
