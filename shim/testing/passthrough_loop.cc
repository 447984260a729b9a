// File: shim/testing/passthrough_loop.cc
// `passthrough_loop N` makes N rounds of cheap calls on fds diskwire does not
// own: read of an empty non-blocking pipe, close(-1), poll of one fd, send
// and recv on a unix socket pair. For counting user-space instructions per
// round under valgrind --tool=callgrind with and without the preload:
// (Ir(N) - Ir(0)) / N. Run with DISKWIRE_* set as well to measure the path
// taken when an engine exists but the fd is not selected.

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const long rounds = argc > 1 ? atol(argv[1]) : 0;
  int p[2], sp[2];
  if (pipe2(p, O_NONBLOCK) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) {
    return 1;
  }
  // With DISKWIRE_* set, this creates the engine: the calls below then take
  // the "engine present, fd not selected" path.
  close(socket(AF_INET, SOCK_STREAM, 0));
  char buf[64] = {};
  pollfd pfd{p[1], POLLOUT, 0};
  long sink = 0;
  for (long i = 0; i < rounds; ++i) {
    sink += read(p[0], buf, 1);
    sink += close(-1);
    sink += poll(&pfd, 1, 0);
    sink += send(sp[0], buf, sizeof(buf), 0);
    sink += recv(sp[1], buf, sizeof(buf), 0);
  }
  return sink == 12345 ? 2 : 0;
}
