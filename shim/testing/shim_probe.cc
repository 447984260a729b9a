// File: shim/testing/shim_probe.cc
// A program for the shim's preload tests (shim/preload_test.cc), built with
// -D_FORTIFY_SOURCE=2 so that the fortified variants are what it calls.
//
//   shim_probe transcript     every interposed call; deterministic output
//   shim_probe wake           poll/select survive engine wakes (test engine)
//   shim_probe private        close/dup2/closefrom spare the engine's fds
//   shim_probe crash-inside   fault inside diskwire, application handler
//   shim_probe crash-default  fault inside diskwire, no application handler
//   shim_probe crash-app      fault in the application itself
//   shim_probe crash-abort    abort() inside diskwire, no application handler
//   shim_probe fork           children of fork and vfork see the engine's
//                             atfork child handler run (test engine)
//   shim_probe exec           clears LD_PRELOAD/DISKWIRE_*, execs print-env
//   shim_probe print-env      prints whether they arrived
//
// With the test engine loaded, its counters are printed to stderr at exit.

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <initializer_list>

#include "shim/testing/probe.h"

namespace diskwire::probe {
namespace {

template <typename F>
F Fake(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

void PrintCounters() {
  auto counters = Fake<void (*)(long*, int)>("diskwire_fake_counters");
  if (counters == nullptr) return;
  long c[11];
  counters(c, 11);
  fprintf(stderr,
          "fake counters: sent=%ld received=%ld sends=%ld recvs=%ld closes=%ld "
          "dups=%ld epoll_ctls=%ld fork_children=%ld connects=%ld accepts=%ld "
          "introspections=%ld\n",
          c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
}

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct WaitArgs {
  int fd;
  bool use_select;
  int timeout_ms;
  int result = 0;
  int revents = 0;
  double elapsed_ms = 0;
};

void* Waiter(void* p) {
  auto* a = static_cast<WaitArgs*>(p);
  const double start = NowMs();
  if (a->use_select) {
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(a->fd, &rs);
    timeval tv{a->timeout_ms / 1000, (a->timeout_ms % 1000) * 1000};
    a->result = select(a->fd + 1, &rs, nullptr, nullptr, &tv);
    a->revents = FD_ISSET(a->fd, &rs) ? POLLIN : 0;
  } else {
    pollfd pfd{a->fd, POLLIN, 0};
    a->result = poll(&pfd, 1, a->timeout_ms);
    a->revents = pfd.revents;
  }
  a->elapsed_ms = NowMs() - start;
  return nullptr;
}

// A wait on an owned fd is woken by the engine (twice), then data arrives: the
// wait must report exactly the data. Then a wake with no data must not end a
// short wait early.
int Wake() {
  auto wake = Fake<void (*)()>("diskwire_fake_wake");
  auto wait_consumed = Fake<void (*)(long)>("diskwire_fake_wait_consumed");
  if (wake == nullptr) {
    fprintf(stderr, "probe: no test engine\n");
    return 2;
  }
  TcpPair t = MakeTcpPair();
  long consumed = 0;
  for (bool use_select : {false, true}) {
    WaitArgs a{t.client, use_select, 10000};
    pthread_t th;
    pthread_create(&th, nullptr, &Waiter, &a);
    wake();
    wait_consumed(++consumed);
    wake();
    wait_consumed(++consumed);
    send(t.server, "x", 1, 0);
    pthread_join(th, nullptr);
    char c;
    recv(t.client, &c, 1, 0);
    printf("%s after wakes = %d revents=%d\n", use_select ? "select" : "poll",
           a.result, a.revents);
  }
  WaitArgs quiet{t.client, false, 300};
  wake();
  Waiter(&quiet);
  printf("poll wake only = %d revents=%d waited_full=%d\n", quiet.result,
         quiet.revents, quiet.elapsed_ms >= 290);
  return 0;
}

int Private() {
  close(socket(AF_INET, SOCK_STREAM, 0));  // The engine starts with a socket.
  auto wake_fd = Fake<int (*)()>("diskwire_fake_wake_fd");
  const int w = wake_fd ? wake_fd() : -1;
  if (w < 0) {
    fprintf(stderr, "probe: no test engine\n");
    return 2;
  }
  Line("close private", close(w));
  Line("dup2 onto private", dup2(0, w));
  Line("dup3 onto private", dup3(0, w, 0));
  Line("close_range over private", close_range(w, w, 0));
  const int above = fcntl(0, F_DUPFD, w + 1);
  closefrom(w);
  Line("closefrom closed the application's fd", fcntl(above, F_GETFD));
  Line("private fd still open", fcntl(w, F_GETFD) >= 0);
  // Diskwire's own calls by libc name pass straight through.
  TcpPair t = MakeTcpPair();
  auto own_connect = Fake<long (*)(int)>("diskwire_fake_connect_by_name");
  Line("engine's own connect offered to it", own_connect(t.port));
  auto own_close = Fake<int (*)()>("diskwire_fake_close_private_by_name");
  Line("engine's own close of its private fd", own_close());
  Line("  private fd now closed", fcntl(w, F_GETFD));
  return 0;
}

void AppSegvHandler(int sig) {
  const char msg[] = "application SIGSEGV handler ran\n";
  write(2, msg, sizeof(msg) - 1);
  _exit(sig == SIGSEGV ? 42 : 43);
}

int Crash(bool app_handler, bool inside) {
  if (app_handler) {
    struct sigaction sa {};
    sa.sa_handler = &AppSegvHandler;
    sigaction(SIGSEGV, &sa, nullptr);
  }
  TcpPair t = MakeTcpPair();
  fprintf(stderr, "probe: faulting %s diskwire\n",
          inside ? "inside" : "outside");
  if (inside) {
    // The engine touches every byte it is handed: this address faults there.
    send(t.client, reinterpret_cast<const void*>(16), 8, 0);
  } else {
    *reinterpret_cast<volatile int*>(Opaque(16)) = 1;
  }
  fprintf(stderr, "probe: no fault?\n");
  return 3;
}

// Each child prints how many times the engine's AfterForkChild ran in it.
int Fork() {
  close(socket(AF_INET, SOCK_STREAM, 0));  // The engine starts with a socket.
  auto counters = Fake<void (*)(long*, int)>("diskwire_fake_counters");
  if (counters == nullptr) return 2;
  for (bool use_vfork : {false, true}) {
    fflush(stdout);
    const pid_t pid = use_vfork ? vfork() : fork();
    if (pid == 0) {
      long c[8];
      counters(c, 8);
      printf("%s child: fork_children=%ld\n", use_vfork ? "vfork" : "fork",
             c[7]);
      fflush(stdout);
      _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
  }
  return 0;
}

// A daemon's double fork: the child forks again before its engine ever
// started. Prints how the grandchild ended.
int ForkTwice() {
  close(socket(AF_INET, SOCK_STREAM, 0));  // The engine starts with a socket.
  fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    const pid_t grandchild = fork();
    if (grandchild == 0) _exit(7);
    int status = 0;
    waitpid(grandchild, &status, 0);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  int status = 0;
  waitpid(child, &status, 0);
  printf("grandchild exited %d\n",
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return 0;
}

int PrintEnv() {
  const char* preload = getenv("LD_PRELOAD");
  const char* volume = getenv("DISKWIRE_VOLUME");
  printf("LD_PRELOAD %s, DISKWIRE_VOLUME=%s\n", preload ? "present" : "missing",
         volume ? volume : "(missing)");
  return 0;
}

int Exec(const char* self) {
  unsetenv("LD_PRELOAD");
  unsetenv("DISKWIRE_VOLUME");
  char* const argv[] = {const_cast<char*>(self), const_cast<char*>("print-env"),
                        nullptr};
  char* const empty_env[] = {const_cast<char*>("PROBE=1"), nullptr};
  const char* names[] = {"execv",  "execve", "execl",   "execlp",
                         "execvp", "execle", "execvpe", "fexecve"};
  for (int i = 0; i < 8; ++i) {
    printf("%s: ", names[i]);
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      switch (i) {
        case 0:
          execv(self, argv);
          break;
        case 1:
          execve(self, argv, empty_env);
          break;
        case 2:
          execl(self, self, "print-env", nullptr);
          break;
        case 3:
          execlp(self, self, "print-env", nullptr);
          break;
        case 4:
          execvp(self, argv);
          break;
        case 5:
          execle(self, self, "print-env", nullptr, empty_env);
          break;
        case 6:
          execvpe(self, argv, empty_env);
          break;
        case 7:
          fexecve(open(self, O_RDONLY | O_CLOEXEC), argv, empty_env);
          break;
      }
      _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
  }
  for (bool search : {false, true}) {
    printf("%s: ", search ? "posix_spawnp" : "posix_spawn");
    fflush(stdout);
    pid_t pid;
    const int rc =
        search ? posix_spawnp(&pid, self, nullptr, nullptr, argv, empty_env)
               : posix_spawn(&pid, self, nullptr, nullptr, argv, empty_env);
    int status;
    if (rc == 0) waitpid(pid, &status, 0);
  }
  return 0;
}

}  // namespace
}  // namespace diskwire::probe

int main(int argc, char** argv) {
  using namespace diskwire::probe;  // NOLINT
  const char* mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (strcmp(mode, "transcript") == 0) {
    RunFilesTranscript();
    RunSocketsTranscript();
    rc = 0;
  } else if (strcmp(mode, "wake") == 0) {
    rc = Wake();
  } else if (strcmp(mode, "private") == 0) {
    rc = Private();
  } else if (strcmp(mode, "crash-inside") == 0) {
    rc = Crash(true, true);
  } else if (strcmp(mode, "crash-default") == 0) {
    rc = Crash(false, true);
  } else if (strcmp(mode, "crash-abort") == 0) {
    TcpPair t = MakeTcpPair();
    send(t.client, "x", 1, MSG_OOB);  // The test engine aborts on MSG_OOB.
    rc = 3;
  } else if (strcmp(mode, "crash-app") == 0) {
    rc = Crash(true, false);
  } else if (strcmp(mode, "fork") == 0) {
    rc = Fork();
  } else if (strcmp(mode, "fork-twice") == 0) {
    rc = ForkTwice();
  } else if (strcmp(mode, "exec") == 0) {
    rc = Exec(argv[0]);
  } else if (strcmp(mode, "print-env") == 0) {
    return PrintEnv();
  } else {
    fprintf(stderr,
            "usage: shim_probe transcript|wake|private|crash-inside|"
            "crash-default|crash-app|fork|fork-twice|exec|print-env\n");
  }
  fflush(stdout);
  PrintCounters();
  return rc;
}
