// File: shim/testing/probe_sockets.cc
// Transcript part two: TCP over loopback (every data call, both directions,
// sendfile and splice), unix socket pairs, refused connections.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim/testing/probe.h"

namespace diskwire::probe {
namespace {

int PortOf(int fd, bool peer) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if ((peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
            : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len)) != 0) {
    return -1;
  }
  return ntohs(addr.sin_port);
}

// Receives exactly len bytes (MSG_WAITALL) and reports their sum's match.
void ExpectReceived(const char* what, int fd, const char* sent, size_t len) {
  char* buf = static_cast<char*>(malloc(len));
  Line(what, recv(fd, buf, len, MSG_WAITALL));
  Line("  sum matches", Sum(buf, len) == Sum(sent, len));
  free(buf);
}

void DataCalls(const TcpPair& t) {
  Line("getpeername port is listener's", PortOf(t.client, true) == t.port);
  Line("getsockname port is listener's", PortOf(t.server, false) == t.port);
  int type = 0;
  socklen_t len = sizeof(type);
  Line("getsockopt SO_TYPE",
       getsockopt(t.client, SOL_SOCKET, SO_TYPE, &type, &len));
  Line("  type", type);
  int one = 1;
  Line("setsockopt TCP_NODELAY",
       setsockopt(t.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));

  char small[32] = {};
  Line("send", send(t.client, "abc", 3, 0));
  Line("recv", recv(t.server, small, Opaque(3), MSG_WAITALL));  // __recv_chk
  Note("  data", small);
  Line("sendto", sendto(t.server, "defg", 4, 0, nullptr, 0));
  sockaddr_storage from{};
  socklen_t from_len = sizeof(from);
  Line("recvfrom", recvfrom(t.client, small, Opaque(4), MSG_WAITALL,
                            reinterpret_cast<sockaddr*>(&from), &from_len));
  Line("  from_len", from_len);
  char h[] = "head", b[] = "body!";
  iovec out[2] = {{h, 4}, {b, 5}};
  msghdr msg{};
  msg.msg_iov = out;
  msg.msg_iovlen = 2;
  Line("sendmsg", sendmsg(t.client, &msg, 0));
  char in1[3], in2[6];
  iovec in[2] = {{in1, 3}, {in2, 6}};
  msghdr rmsg{};
  rmsg.msg_iov = in;
  rmsg.msg_iovlen = 2;
  Line("recvmsg", recvmsg(t.server, &rmsg, MSG_WAITALL));
  Line("  sum matches",
       Sum(in1, 3) + Sum(in2, 6) == Sum("hea", 3) + Sum("dbody!", 6));

  // A control buffer larger than what the kernel writes: the caller gets the
  // kernel's msg_controllen back, so that CMSG_NXTHDR stops after the one
  // message and does not walk into the rest of the buffer. TCP_INQ, not a
  // timestamp: the kernel turns timestamps on for the system lazily, so the
  // first segments after SO_TIMESTAMP may come without one.
  Line("setsockopt TCP_INQ",
       setsockopt(t.server, IPPROTO_TCP, TCP_INQ, &one, sizeof(one)));
  Line("send for TCP_INQ", send(t.client, "inq", 3, 0));
  char inq_data[2];
  iovec inq_iov{inq_data, sizeof(inq_data)};
  alignas(cmsghdr) char control[128];
  memset(control, 0x5a, sizeof(control));
  msghdr cm{};
  cm.msg_iov = &inq_iov;
  cm.msg_iovlen = 1;
  cm.msg_control = control;
  cm.msg_controllen = sizeof(control);
  Line("recvmsg with control", recvmsg(t.server, &cm, MSG_WAITALL));
  Line("  msg_controllen", static_cast<long>(cm.msg_controllen));
  Line("  msg_flags", cm.msg_flags);
  cmsghdr* c = CMSG_FIRSTHDR(&cm);
  const bool inq =
      c != nullptr && c->cmsg_level == SOL_TCP && c->cmsg_type == TCP_CM_INQ;
  Line("  TCP_CM_INQ first", inq);
  int left = -1;
  if (inq) memcpy(&left, CMSG_DATA(c), sizeof(left));
  Line("  bytes left", left);
  Line("  nothing after it", c != nullptr && CMSG_NXTHDR(&cm, c) == nullptr);
  int zero = 0;
  setsockopt(t.server, IPPROTO_TCP, TCP_INQ, &zero, sizeof(zero));
  Line("recv the last", recv(t.server, inq_data, 1, 0));

  char m0[] = "one", m1[] = "three", m2[] = "fivefive";
  iovec mv[3] = {{m0, 3}, {m1, 5}, {m2, 8}};
  mmsghdr mm[3] = {};
  for (int i = 0; i < 3; ++i) {
    mm[i].msg_hdr.msg_iov = &mv[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  Line("sendmmsg", sendmmsg(t.client, mm, 3, 0));
  Line("  lengths", mm[0].msg_len * 100 + mm[1].msg_len * 10 + mm[2].msg_len);
  char all[17] = {};
  iovec rv{all, 16};
  mmsghdr rm[1] = {};
  rm[0].msg_hdr.msg_iov = &rv;
  rm[0].msg_hdr.msg_iovlen = 1;
  Line("recvmmsg", recvmmsg(t.server, rm, 1, MSG_WAITALL, nullptr));
  Line("  msg_len", rm[0].msg_len);
  Note("  data", all);

  Line("syscall sendto", syscall(SYS_sendto, t.client, "sys", 3, 0, 0, 0));
  Line("syscall recvfrom",
       syscall(SYS_recvfrom, t.server, small, 3, MSG_WAITALL, 0, 0));
  Line("write socket", write(t.server, "wxyz", 4));
  Line("read socket", read(t.client, small, Opaque(4)));
  char v1[2], v2[2];
  iovec vv[2] = {{v1, 2}, {v2, 2}};
  Line("writev socket", writev(t.client, out, 2));
  Line("readv socket", readv(t.server, vv, 2));
  Line("recv rest", recv(t.server, small, 5, MSG_WAITALL));

  Line("send more", send(t.client, "12345", 5, 0));
  pollfd pfd{t.server, POLLIN, 0};
  Line("poll socket", poll(&pfd, 1, 1000));
  Line("  revents", pfd.revents);
  pollfd two[2] = {{t.server, POLLIN, 0}, {t.client, POLLOUT, 0}};
  Line("poll two sockets", poll(two, Opaque(2), 1000));  // __poll_chk
  timespec second{1, 0};
  Line("ppoll two sockets", ppoll(two, Opaque(2), &second, nullptr));
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(t.server, &rs);
  timeval tv{1, 0};
  Line("select socket", select(t.server + 1, &rs, nullptr, nullptr, &tv));
  Line("  isset", FD_ISSET(t.server, &rs) != 0);
  int queued = -1;
  Line("ioctl FIONREAD socket", ioctl(t.server, FIONREAD, &queued));
  Line("  queued", queued);
  const int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 99;
  Line("epoll_ctl add socket", epoll_ctl(ep, EPOLL_CTL_ADD, t.server, &ev));
  epoll_event got[2];
  Line("epoll_wait socket", epoll_wait(ep, got, 2, 1000));
  Line("  data", static_cast<long>(got[0].data.u64));
  Line("epoll_ctl del socket", epoll_ctl(ep, EPOLL_CTL_DEL, t.server, nullptr));
  Line("close epoll", close(ep));
  Line("recv queued", recv(t.server, small, 5, 0));
  Line("fcntl O_NONBLOCK socket", fcntl(t.server, F_SETFL, O_NONBLOCK));
  Line("recv empty nonblocking", recv(t.server, small, 5, 0));
  Line("recv MSG_DONTWAIT", recv(t.client, small, 5, MSG_DONTWAIT));
  fcntl(t.server, F_SETFL, 0);
}

void Transfers(const TcpPair& t) {
  char path[] = "/tmp/dw_probe_XXXXXX";
  const int f = mkstemp(path);
  unlink(path);
  static char data[200000];
  Pattern(data, sizeof(data), 0);
  write(f, data, sizeof(data));
  off_t off = 100;
  Line("sendfile offset", sendfile(t.client, f, &off, 150000));
  Line("  offset", static_cast<long>(off));
  ExpectReceived("  received", t.server, data + 100, 150000);
  lseek(f, 500, SEEK_SET);
  Line("sendfile position", sendfile(t.client, f, nullptr, 5000));
  Line("  position", static_cast<long>(lseek(f, 0, SEEK_CUR)));
  ExpectReceived("  received", t.server, data + 500, 5000);
  off64_t off64 = 7;
  Line("sendfile64", sendfile64(t.server, f, &off64, 3000));
  ExpectReceived("  received", t.client, data + 7, 3000);

  int p[2];
  pipe2(p, 0);
  Line("write for splice", write(t.client, data, 1000));
  long total = 0;
  while (total < 1000) {
    const ssize_t n = splice(t.server, nullptr, p[1], nullptr, 1000 - total, 0);
    if (n <= 0) break;
    total += n;
  }
  Line("splice socket->pipe", total);
  char buf[1000];
  Line("  read pipe", read(p[0], buf, sizeof(buf)));
  Line("  sum matches", Sum(buf, 1000) == Sum(data, 1000));
  Line("fill pipe", write(p[1], data + 1000, 500));
  total = 0;
  while (total < 500) {
    const ssize_t n = splice(p[0], nullptr, t.client, nullptr, 500 - total, 0);
    if (n <= 0) break;
    total += n;
  }
  Line("splice pipe->socket", total);
  ExpectReceived("  received", t.server, data + 1000, 500);
  loff_t bad = 0;
  Line("splice socket with offset",
       splice(t.server, &bad, p[1], nullptr, 10, 0));
  close(p[0]);
  close(p[1]);
  close(f);
}

void Lifecycle(const TcpPair& t) {
  const int d = dup(t.client);
  Line("write on dup", write(d, "dup!", 4));
  char buf[8] = {};
  Line("recv from dup", recv(t.server, buf, 4, MSG_WAITALL));
  Line("close dup", close(d));
  Line("shutdown SHUT_WR", shutdown(t.client, SHUT_WR));
  Line("recv eof", recv(t.server, buf, sizeof(buf), 0));
  Line("send after peer shutdown", send(t.server, "ok", 2, 0));
  Line("recv after own shutdown", recv(t.client, buf, 2, MSG_WAITALL));
  Line("close client", close(t.client));
  Line("close server", close(t.server));
  Line("close listener", close(t.listener));
}

void Others() {
  // accept4 and a non-blocking connect.
  TcpPair t = MakeTcpPair();
  const int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(t.port));
  const int rc = connect(c2, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  Line("connect non-blocking started", rc == 0 || errno == EINPROGRESS);
  errno = 0;
  const int s2 = accept4(t.listener, nullptr, nullptr, SOCK_CLOEXEC);
  Line("accept4 ok", s2 >= 0);
  Line("  cloexec", fcntl(s2, F_GETFD));
  pollfd pfd{c2, POLLOUT, 0};
  Line("poll connected", poll(&pfd, 1, 1000));
  Line("send on accept4'd", send(s2, "hi", 2, 0));
  char buf[4] = {};
  pfd = {c2, POLLIN, 0};
  poll(&pfd, 1, 1000);
  Line("recv on non-blocking", recv(c2, buf, 2, 0));
  close(c2);
  close(s2);
  close(t.client);
  close(t.server);
  close(t.listener);

  // A refused connection.
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  socklen_t len = sizeof(addr);
  addr.sin_port = 0;
  bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len);
  close(l);
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  Line("connect refused",
       connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  close(c);

  int sp[2];
  Line("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
  Line("send unix", send(sp[0], "unix", 4, 0));
  Line("recv unix", recv(sp[1], buf, 4, 0));
  close(sp[0]);
  close(sp[1]);
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  Line("udp socket ok", udp >= 0);
  close(udp);
}

}  // namespace

void RunSocketsTranscript() {
  TcpPair t = MakeTcpPair();
  DataCalls(t);
  Transfers(t);
  Lifecycle(t);
  Others();
}

}  // namespace diskwire::probe
