// File: shim/socket_hooks.cc
// Hooks that create, connect, accept and describe sockets. connect and accept
// hand TCP sockets to the engine, which decides whether to select them.

#include <netinet/in.h>
#include <sys/socket.h>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/real_calls.h"

namespace diskwire::shim {
namespace {

// Is `fd` an AF_INET/AF_INET6 TCP socket? Asked only when an engine exists.
bool IsTcp(int fd) {
  KeepErrno keep;
  int value = 0;
  socklen_t len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &value, &len) != 0 ||
      value != IPPROTO_TCP) {
    return false;
  }
  len = sizeof(value);
  if (Real().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) != 0) {
    return false;
  }
  return value == AF_INET || value == AF_INET6;
}

// Offers a freshly accepted socket to the engine, unless diskwire itself
// accepted it. The peer address the application asked for comes from the
// engine: a connection opened over the volume arrives from the loopback.
void OfferAccepted(int listen_fd, int fd, sockaddr* addr, socklen_t* len,
                   const void* caller) {
  if (fd < 0 || InDiskwireText(caller)) return;
  Engine* engine = EnsureEngine();
  if (engine == nullptr || engine->Owns(fd) || !IsTcp(fd)) return;
  InsideDiskwire inside;
  KeepErrno keep;
  engine->OnAccept(listen_fd, fd);
  if (addr != nullptr && len != nullptr && engine->Owns(fd)) {
    engine->GetPeerName(fd, addr, len);
  }
}

}  // namespace

int ConnectCall(int fd, const sockaddr* addr, socklen_t len,
                const void* caller) {
  if (addr == nullptr ||
      (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
      InDiskwireText(caller)) {
    return Real().connect(fd, addr, len);
  }
  Engine* engine = EnsureEngine();
  if (engine != nullptr && engine->CarriesDatagrams(fd)) {
    const int result = Real().connect(fd, addr, len);
    if (result == 0) {
      InsideDiskwire inside;
      KeepErrno keep;
      engine->OnDatagramAddressChange(fd);
    }
    return result;
  }
  // A selected socket may be a socket pair end now (a connection over the
  // volume): connect() again on it is the engine's to answer too.
  if (engine == nullptr || (!engine->Owns(fd) && !IsTcp(fd))) {
    return Real().connect(fd, addr, len);
  }
  InsideDiskwire inside;
  return static_cast<int>(ReturnErrno(engine->Connect(fd, addr, len)));
}

int Accept4Call(int fd, sockaddr* addr, socklen_t* len, int flags,
                const void* caller) {
  const int accepted = Real().accept4(fd, addr, len, flags);
  OfferAccepted(fd, accepted, addr, len, caller);
  return accepted;
}

}  // namespace diskwire::shim

using diskwire::Engine;
using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(int, socket, (int domain, int type, int protocol)) {
  // The first socket is where a configured process creates its engine, so that
  // its threads exist before the first connection is offered to it.
  if (domain != AF_INET && domain != AF_INET6) {
    return Real().socket(domain, type, protocol);
  }
  Engine* engine = EnsureEngine();
  const int fd = Real().socket(domain, type, protocol);
  if (fd >= 0 && engine != nullptr && (type & 0xf) == SOCK_DGRAM &&
      (protocol == 0 || protocol == IPPROTO_UDP) &&
      !InDiskwireText(DW_CALLER)) {
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnDatagramSocket(fd);
  }
  return fd;
}

DW_HOOK(int, socketpair, (int domain, int type, int protocol, int fds[2])) {
  return Real().socketpair(domain, type, protocol, fds);
}

DW_HOOK(int, bind, (int fd, const sockaddr* addr, socklen_t len)) {
  const int result = Real().bind(fd, addr, len);
  Engine* engine = result == 0 ? DatagramEngine(fd) : nullptr;
  if (engine != nullptr && !InDiskwireText(DW_CALLER)) {
    InsideDiskwire inside;
    KeepErrno keep;
    engine->OnDatagramAddressChange(fd);
  }
  return result;
}

DW_HOOK(int, listen, (int fd, int backlog)) {
  const int result = Real().listen(fd, backlog);
  if (result != 0 || InDiskwireText(DW_CALLER)) return result;
  Engine* engine = EnsureEngine();
  if (engine == nullptr || !IsTcp(fd)) return result;
  InsideDiskwire inside;
  KeepErrno keep;
  engine->OnListen(fd);
  return result;
}

DW_HOOK(int, connect, (int fd, const sockaddr* addr, socklen_t len)) {
  return ConnectCall(fd, addr, len, DW_CALLER);
}

DW_HOOK(int, accept, (int fd, sockaddr* addr, socklen_t* len)) {
  const int accepted = Real().accept(fd, addr, len);
  OfferAccepted(fd, accepted, addr, len, DW_CALLER);
  return accepted;
}

DW_HOOK(int, accept4, (int fd, sockaddr* addr, socklen_t* len, int flags)) {
  return Accept4Call(fd, addr, len, flags, DW_CALLER);
}

DW_HOOK(int, shutdown, (int fd, int how)) {
  Engine* engine = OwningEngine(fd);
  if (engine == nullptr) return Real().shutdown(fd, how);
  InsideDiskwire inside;
  return static_cast<int>(ReturnErrno(engine->Shutdown(fd, how)));
}

// Names and options of an owned fd come from the engine: after a swap the fd
// names a local socket pair, yet the application still sees its TCP socket.
// The engine's own calls by name reach the real socket.
DW_HOOK(int, getpeername, (int fd, sockaddr* addr, socklen_t* len)) {
  Engine* engine = OwningEngine(fd, DW_CALLER);
  if (engine == nullptr) return Real().getpeername(fd, addr, len);
  InsideDiskwire inside;
  return static_cast<int>(ReturnErrno(engine->GetPeerName(fd, addr, len)));
}

DW_HOOK(int, getsockname, (int fd, sockaddr* addr, socklen_t* len)) {
  Engine* engine = OwningEngine(fd, DW_CALLER);
  if (engine == nullptr) return Real().getsockname(fd, addr, len);
  InsideDiskwire inside;
  return static_cast<int>(ReturnErrno(engine->GetSockName(fd, addr, len)));
}

DW_HOOK(int, getsockopt,
        (int fd, int level, int name, void* value, socklen_t* len)) {
  Engine* engine = OwningEngine(fd, DW_CALLER);
  if (engine == nullptr) return Real().getsockopt(fd, level, name, value, len);
  InsideDiskwire inside;
  return static_cast<int>(
      ReturnErrno(engine->GetSockOpt(fd, level, name, value, len)));
}

DW_HOOK(int, setsockopt,
        (int fd, int level, int name, const void* value, socklen_t len)) {
  Engine* engine = OwningEngine(fd, DW_CALLER);
  if (engine == nullptr) return Real().setsockopt(fd, level, name, value, len);
  InsideDiskwire inside;
  return static_cast<int>(
      ReturnErrno(engine->SetSockOpt(fd, level, name, value, len)));
}
