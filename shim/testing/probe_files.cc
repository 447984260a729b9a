// File: shim/testing/probe_files.cc
// Transcript part one: pipes, files, descriptors, waits, syscall(), processes
// and signals.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/testing/probe.h"

namespace diskwire::probe {
namespace {

volatile sig_atomic_t g_signalled = 0;
void OnSignal(int) { g_signalled = 1; }

void Pipes() {
  int p[2];
  Line("pipe2", pipe2(p, 0));
  Line("write pipe", write(p[1], "hello", 5));
  int queued = -1;
  Line("ioctl FIONREAD", ioctl(p[0], FIONREAD, &queued));
  Line("  queued", queued);
  pollfd pfd{p[0], POLLIN, 0};
  Line("poll", poll(&pfd, 1, 0));
  Line("  revents", pfd.revents);
  char buf[16] = {};
  Line("read 3", read(p[0], buf, Opaque(3)));  // __read_chk
  Note("  data", buf);
  char a[1] = {}, b[4] = {};
  iovec iov[2] = {{a, 1}, {b, 4}};
  Line("readv", readv(p[0], iov, 2));
  Line("fcntl F_SETFL O_NONBLOCK", fcntl(p[0], F_SETFL, O_NONBLOCK));
  Line("read empty nonblocking", read(p[0], buf, sizeof(buf)));
  int off = 0;
  Line("ioctl FIONBIO 0", ioctl(p[0], FIONBIO, &off));
  Line("  O_NONBLOCK", fcntl(p[0], F_GETFL) & O_NONBLOCK);
  char x[] = "abc", y[] = "def";
  iovec out[2] = {{x, 3}, {y, 3}};
  Line("writev", writev(p[1], out, 2));
  Line("writev bad count", writev(p[1], out, static_cast<int>(Opaque(0)) - 1));

  const int d = dup(p[0]);
  Line("dup ok", d >= 0);
  Line("dup2 same number", dup2(p[0], d) == d);
  Line("dup3 cloexec", dup3(p[0], d, O_CLOEXEC) == d);
  Line("  F_GETFD", fcntl(d, F_GETFD));
  Line("dup3 onto itself", dup3(p[0], p[0], 0));
  Line("dup2 onto itself", dup2(p[0], p[0]) == p[0]);
  const int d100 = fcntl(p[0], F_DUPFD, 100);
  Line("F_DUPFD >= 100", d100 >= 100);
  const int d64 = fcntl64(p[0], F_DUPFD, 0);
  Line("fcntl64 F_DUPFD ok", d64 >= 0);
  Line("close fcntl64 dup", close(d64));
  const int dc = fcntl(p[0], F_DUPFD_CLOEXEC, 0);
  Line("F_DUPFD_CLOEXEC flags", fcntl(dc, F_GETFD));
  Line("close dup", close(d));
  Line("close dup again", close(d));
  Line("close F_DUPFD", close(d100));
  Line("close_range one", close_range(dc, dc, 0));
  Line("  closed", fcntl(dc, F_GETFD));
  Line("close -1", close(-1));
  Line("read -1", read(-1, buf, 1));

  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(p[0], &rs);
  timeval tv{0, 0};
  Line("select", select(p[0] + 1, &rs, nullptr, nullptr, &tv));
  Line("  isset", FD_ISSET(p[0], &rs) != 0);
  FD_SET(p[0], &rs);
  timespec zero{0, 0};
  Line("pselect", pselect(p[0] + 1, &rs, nullptr, nullptr, &zero, nullptr));
  pollfd two[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
  Line("poll two", poll(two, Opaque(2), 0));                 // __poll_chk
  Line("ppoll two", ppoll(two, Opaque(2), &zero, nullptr));  // __ppoll_chk
  Line("ppoll one", ppoll(two, 1, &zero, nullptr));

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  Line("epoll_create1 ok", ep >= 0);
  const int ep_old = epoll_create(4);
  Line("epoll_create ok", ep_old >= 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0x1234;
  Line("epoll_ctl add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
  Line("epoll_ctl add again", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
  epoll_event got[4];
  Line("epoll_wait", epoll_wait(ep, got, 4, 0));
  Line("  data", static_cast<long>(got[0].data.u64));
  Line("epoll_pwait", epoll_pwait(ep, got, 4, 0, nullptr));
  Line("epoll_pwait2", epoll_pwait2(ep, got, 4, &zero, nullptr));
  Line("epoll_ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], nullptr));
  Line("close epoll", close(ep) + close(ep_old));

  Line("syscall write", syscall(SYS_write, p[1], "xy", 2));
  Line("read rest", read(p[0], buf, sizeof(buf)));
  syscall(SYS_write, p[1], "zz", 2);
  Line("syscall read", syscall(SYS_read, p[0], buf, 4));
  Line("syscall getpid same", syscall(SYS_getpid) == getpid());
  Line("syscall close -1", syscall(SYS_close, -1));
  close(p[0]);
  close(p[1]);
}

void Files() {
  char path[] = "/tmp/dw_probe_XXXXXX";
  const int f = mkstemp(path);
  unlink(path);
  Line("mkstemp ok", f >= 0);
  static char data[100000];
  Pattern(data, sizeof(data), 0);
  Line("write file", write(f, data, sizeof(data)));
  int p[2];
  pipe2(p, 0);
  loff_t off = 1000;
  Line("splice file->pipe", splice(f, &off, p[1], nullptr, 4000, 0));
  Line("  offset", static_cast<long>(off));
  char buf[4000];
  Line("read pipe", read(p[0], buf, sizeof(buf)));
  Line("  sum matches", Sum(buf, 4000) == Sum(data + 1000, 4000));
  int big[3];
  for (int& fd : big) fd = fcntl(f, F_DUPFD, 600);
  closefrom(600);
  Line("closefrom closed all", fcntl(big[0], F_GETFD) == -1 &&
                                   fcntl(big[1], F_GETFD) == -1 &&
                                   fcntl(big[2], F_GETFD) == -1);
  errno = 0;
  close(p[0]);
  close(p[1]);
  close(f);
}

void Processes() {
  int p[2];
  pipe2(p, 0);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    write(p[1], "child", 5);
    _exit(0);
  }
  char buf[8] = {};
  Line("fork read from child", read(p[0], buf, 5));
  int status = -1;
  waitpid(pid, &status, 0);
  Line("  child status", status);
  pid = vfork();
  if (pid == 0) _exit(7);
  waitpid(pid, &status, 0);
  Line("vfork child exit", WEXITSTATUS(status));
  close(p[0]);
  close(p[1]);

  struct sigaction sa {};
  sa.sa_handler = &OnSignal;
  Line("sigaction SIGUSR1", sigaction(SIGUSR1, &sa, nullptr));
  raise(SIGUSR1);
  Line("  handler ran", g_signalled);
  struct sigaction old {
  }, cur{};
  Line("sigaction SIGSEGV set", sigaction(SIGSEGV, &sa, &old));
  Line("sigaction SIGSEGV get", sigaction(SIGSEGV, nullptr, &cur));
  Line("  same handler", cur.sa_handler == &OnSignal);
  Line("sigaction SIGSEGV restore", sigaction(SIGSEGV, &old, nullptr));
  g_signalled = 0;
  Line("signal SIGUSR2 previous was default",
       signal(SIGUSR2, &OnSignal) == SIG_DFL);
  raise(SIGUSR2);
  Line("  handler ran", g_signalled);
  Line("signal SIGABRT previous was default",
       signal(SIGABRT, SIG_DFL) == SIG_DFL);
}

}  // namespace

void RunFilesTranscript() {
  Pipes();
  Files();
  Processes();
}

}  // namespace diskwire::probe
