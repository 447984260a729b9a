// File: shim/transfer_hooks.cc
// sendfile and splice on an owned socket. The kernel would move the bytes
// without showing them to anyone; here every byte passes the engine: the
// source is read into a bounded buffer and handed to SendMsg, or RecvMsg fills
// the buffer and it is written to the pipe.

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "shim/engine_ref.h"
#include "shim/hook.h"
#include "shim/hooks.h"
#include "shim/real_calls.h"

namespace diskwire::shim {
namespace {

constexpr size_t kChunk = 64 * 1024;

// Waits until `fd` is ready for `events` (after EAGAIN on bytes that have
// already been taken from a source that cannot give them back).
void WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  Real().poll(&p, 1, -1);
}

// Sends all of buf[0, len) to the owned `fd`, waiting on EAGAIN. Returns the
// bytes sent; on an error other than EAGAIN/EINTR stops there and leaves the
// error in *error.
size_t SendAll(Engine* engine, int fd, const char* buf, size_t len, int flags,
               int* error) {
  size_t sent = 0;
  while (sent < len) {
    iovec iov{const_cast<char*>(buf + sent), len - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    SysResult r = engine->SendMsg(fd, &msg, flags);
    if (r.ok()) {
      sent += static_cast<size_t>(r.value);
    } else if (r.error == EAGAIN || r.error == EWOULDBLOCK) {
      WaitFor(fd, POLLOUT);
    } else if (r.error != EINTR) {
      *error = r.error;
      break;
    }
  }
  return sent;
}

// Writes all of buf[0, len) to the pipe `fd`, waiting on EAGAIN.
size_t WriteAll(int fd, const char* buf, size_t len, int* error) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = Real().write(fd, buf + done, len - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      WaitFor(fd, POLLOUT);
    } else if (errno != EINTR) {
      *error = errno;
      break;
    }
  }
  return done;
}

// Returns `total` if anything moved, else -1 with `error`.
ssize_t Result(size_t total, int error) {
  if (total > 0 || error == 0) return static_cast<ssize_t>(total);
  errno = error;
  return -1;
}

// sendfile onto an owned socket. A seekable source is read with pread at the
// position the call would use, and only the bytes sent advance it; a pipe or
// socket source cannot give bytes back, so those are sent in full.
ssize_t SendFileOwned(Engine* engine, int out_fd, int in_fd, off64_t* offset,
                      size_t count) {
  InsideDiskwire inside;
  off64_t pos =
      offset != nullptr ? *offset : Real().lseek64(in_fd, 0, SEEK_CUR);
  const bool seekable = offset != nullptr || pos >= 0;
  MallocBuffer<char> buf = AllocateBuffer<char>(std::min(count, kChunk));
  if (buf == nullptr) return Result(0, ENOMEM);
  size_t total = 0;
  int error = 0;
  while (total < count && error == 0) {
    const size_t want = std::min(kChunk, count - total);
    const ssize_t got = seekable ? Real().pread64(in_fd, buf.get(), want, pos)
                                 : Real().read(in_fd, buf.get(), want);
    if (got <= 0) {
      if (got < 0) error = errno;
      break;
    }
    // More follows: cork the chunk, as the kernel's own sendfile does, so that
    // Nagle and delayed ACKs never hold back the tail of one chunk while the
    // next is read.
    const int more = total + static_cast<size_t>(got) < count ? MSG_MORE : 0;
    size_t sent;
    if (seekable) {
      iovec iov{buf.get(), static_cast<size_t>(got)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      SysResult r = engine->SendMsg(out_fd, &msg, more);
      if (!r.ok()) {
        error = r.error;
        break;
      }
      sent = static_cast<size_t>(r.value);
    } else {
      sent = SendAll(engine, out_fd, buf.get(), static_cast<size_t>(got), more,
                     &error);
    }
    total += sent;
    pos += static_cast<off64_t>(sent);
    if (sent < static_cast<size_t>(got)) break;
  }
  if (offset != nullptr) {
    *offset = pos;
  } else if (seekable) {
    Real().lseek64(in_fd, pos, SEEK_SET);
  }
  return Result(total, error);
}

// splice from a pipe onto an owned socket.
ssize_t SpliceToOwned(Engine* engine, int pipe_fd, int sock_fd, size_t len) {
  InsideDiskwire inside;
  MallocBuffer<char> buf = AllocateBuffer<char>(std::min(len, kChunk));
  if (buf == nullptr) return Result(0, ENOMEM);
  const ssize_t got = Real().read(pipe_fd, buf.get(), std::min(len, kChunk));
  if (got <= 0) return got;
  int error = 0;
  return Result(
      SendAll(engine, sock_fd, buf.get(), static_cast<size_t>(got), 0, &error),
      error);
}

// splice from an owned socket into a pipe: takes no more than the pipe has
// room for, so that what is received can always be written.
ssize_t SpliceFromOwned(Engine* engine, int sock_fd, int pipe_fd, size_t len,
                        unsigned int flags) {
  InsideDiskwire inside;
  const int capacity = Real().fcntl(pipe_fd, F_GETPIPE_SZ);
  if (capacity < 0) return -1;  // Not a pipe: EBADF/EINVAL as splice says.
  int queued = 0;
  Real().ioctl(pipe_fd, FIONREAD, &queued);
  size_t room = static_cast<size_t>(std::max(capacity - queued, 0));
  if (room == 0) {
    if (flags & SPLICE_F_NONBLOCK) {
      errno = EAGAIN;
      return -1;
    }
    WaitFor(pipe_fd, POLLOUT);
    room = 4096;  // POLLOUT on a pipe means at least a page is free.
  }
  const size_t want = std::min({len, room, kChunk});
  MallocBuffer<char> buf = AllocateBuffer<char>(want);
  if (buf == nullptr) return Result(0, ENOMEM);
  iovec iov{buf.get(), want};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  SysResult r = engine->Recv(sock_fd, &msg,
                             (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0);
  if (!r.ok() || r.value == 0) return ReturnErrno(r);
  int error = 0;
  return Result(
      WriteAll(pipe_fd, buf.get(), static_cast<size_t>(r.value), &error),
      error);
}

}  // namespace
}  // namespace diskwire::shim

using diskwire::Engine;
using namespace diskwire::shim;  // NOLINT: hooks are extern "C".

DW_HOOK(ssize_t, sendfile64,
        (int out_fd, int in_fd, off64_t* offset, size_t count)) {
  Engine* engine = DataEngine(out_fd);
  if (engine == nullptr) return Real().sendfile64(out_fd, in_fd, offset, count);
  if (count == 0) return 0;
  return SendFileOwned(engine, out_fd, in_fd, offset, count);
}

DW_HOOK(ssize_t, sendfile,
        (int out_fd, int in_fd, off_t* offset, size_t count)) {
  static_assert(sizeof(off_t) == sizeof(off64_t));
  if (DataEngine(out_fd) == nullptr) {
    return Real().sendfile(out_fd, in_fd, offset, count);
  }
  return dw_hook_sendfile64(out_fd, in_fd, reinterpret_cast<off64_t*>(offset),
                            count);
}

DW_HOOK(ssize_t, splice,
        (int fd_in, loff_t* off_in, int fd_out, loff_t* off_out, size_t len,
         unsigned int flags)) {
  Engine* in_engine = DataEngine(fd_in);
  Engine* out_engine = DataEngine(fd_out);
  if (in_engine == nullptr && out_engine == nullptr) {
    return Real().splice(fd_in, off_in, fd_out, off_out, len, flags);
  }
  if ((in_engine != nullptr && off_in != nullptr) ||
      (out_engine != nullptr && off_out != nullptr)) {
    errno = EINVAL;  // A socket has no offset (as the kernel answers).
    return -1;
  }
  if (len == 0) return 0;
  if (out_engine != nullptr) {
    if (in_engine != nullptr) {
      errno = EINVAL;  // Neither end is a pipe.
      return -1;
    }
    return SpliceToOwned(out_engine, fd_in, fd_out, len);
  }
  return SpliceFromOwned(in_engine, fd_in, fd_out, len, flags);
}
