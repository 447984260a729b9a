// File: core/message_calls.h
// A message to or from a socket by the cheapest call that means the same.
//
// The hooks hand the engine a msghdr whatever the application called, and
// sendmsg(2) and recvmsg(2) cost the kernel more than sendto(2) and
// recvfrom(2): it copies the msghdr and the iovec array in, and the flags and
// lengths back out. On a 64-byte loopback ping-pong that was ~170 ns a call on
// these VMs, most of what diskwire added to a round trip (bench/shim_bench.sh).

#ifndef DISKWIRE_CORE_MESSAGE_CALLS_H_
#define DISKWIRE_CORE_MESSAGE_CALLS_H_

#include <sys/socket.h>

#include "core/os_calls.h"
#include "core/sys_result.h"

namespace diskwire {

// sendmsg(2) of `msg`; as sendto(2) when it is one buffer without ancillary
// data, which the kernel treats the same. (A name with a zero length stays
// with sendmsg, which ignores it where sendto would refuse it.)
inline SysResult SendMessage(OsCalls* os, int fd, const msghdr& msg,
                             int flags) {
  if (msg.msg_iovlen == 1 && msg.msg_controllen == 0 &&
      (msg.msg_name == nullptr || msg.msg_namelen > 0)) {
    return os->SendTo(fd, msg.msg_iov[0].iov_base, msg.msg_iov[0].iov_len,
                      flags, static_cast<const sockaddr*>(msg.msg_name),
                      msg.msg_namelen);
  }
  return os->SendMsg(fd, &msg, flags);
}

// recvmsg(2) of `msg`, for a caller that does not read msg->msg_flags back
// (recv, recvfrom, read, one-buffer readv): as recvfrom(2) when it is one
// buffer without room for ancillary data, which differs only in the flags it
// does not report (MSG_OOB, MSG_CTRUNC); msg_flags is then 0. The name and its
// length come back as recvmsg returns them.
inline SysResult ReceiveMessage(OsCalls* os, int fd, msghdr* msg, int flags) {
  if (msg->msg_iovlen == 1 && msg->msg_controllen == 0) {
    msg->msg_flags = 0;
    return os->RecvFrom(fd, msg->msg_iov[0].iov_base, msg->msg_iov[0].iov_len,
                        flags, static_cast<sockaddr*>(msg->msg_name),
                        msg->msg_name != nullptr ? &msg->msg_namelen : nullptr);
  }
  return os->RecvMsg(fd, msg, flags);
}

}  // namespace diskwire

#endif  // DISKWIRE_CORE_MESSAGE_CALLS_H_
