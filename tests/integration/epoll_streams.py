#!/usr/bin/env python3
"""An epoll event-loop program with many concurrent connections, both
directions busy: every connection carries `--size` bytes each way at once.

  epoll_streams.py server --listen ADDR:PORT --conns N --size BYTES --rate R --progress FILE
  epoll_streams.py client --connect ADDR:PORT --conns N --size BYTES --rate R --progress FILE

The client opens N connections; each starts with an 8-byte connection index,
then both ends send their deterministic stream (seeded by index and side) and
shut down their write side when done. Each end checks what it receives
against the stream it expects, by sha256. --rate caps each process's total
sending rate (bytes/s). --progress FILE holds the total bytes received so
far (updated ~10 times a second), so a harness can cut mid-stream.

Ends with one JSON line: {"role", "conns", "complete", "mismatched", "errors",
"received"}; exit 0 when every connection completed byte-exact, 1 otherwise.
Non-blocking sockets and selectors.EpollSelector, as an event loop would.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import selectors
import socket
import struct
import sys
import time

CHUNK = 32 * 1024
HEADER = struct.Struct("!Q")


def stream(index, side, size):
    return random.Random(f"{index}:{side}").randbytes(size)


class Conn:
    def __init__(self, sock, role, size, index=None):
        self.sock, self.role, self.size = sock, role, size
        self.index = index
        self.out = b""
        self.sent = 0
        self.header = b""
        self.got = 0
        self.digest = hashlib.sha256()
        self.expected = None
        self.eof = False
        self.error = None
        self.shut = False
        if index is not None:
            self._prepare()

    def _prepare(self):
        mine = "c" if self.role == "client" else "s"
        theirs = "s" if self.role == "client" else "c"
        self.out = stream(self.index, mine, self.size)
        if self.role == "client":
            self.out = HEADER.pack(self.index) + self.out
        self.expected = hashlib.sha256(stream(self.index, theirs, self.size)).hexdigest()

    def wants_write(self):
        return self.out is not None and self.sent < len(self.out)

    def done(self):
        return self.error is not None or (self.eof and self.shut)

    def on_read(self):
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return 0
        if not data:
            self.eof = True
            if self.expected is None:
                self.error = "EOF before the connection index"
            return 0
        if self.index is None:  # Server: the client's index comes first.
            self.header += data
            if len(self.header) < HEADER.size:
                return len(data)
            (self.index,), data = HEADER.unpack(self.header[:HEADER.size]), \
                self.header[HEADER.size:]
            self._prepare()
        self.got += len(data)
        self.digest.update(data)
        return len(data)

    def on_write(self, budget):
        try:
            n = self.sock.send(self.out[self.sent:self.sent + min(CHUNK, budget)])
        except BlockingIOError:
            return 0
        self.sent += n
        if not self.wants_write():
            self.sock.shutdown(socket.SHUT_WR)
            self.shut = True
        return n

    def verdict(self):
        if self.error is not None:
            return "error"
        if self.got == self.size and self.digest.hexdigest() == self.expected:
            return "complete"
        return "mismatched"


class Loop:
    def __init__(self, args):
        self.args = args
        self.sel = selectors.EpollSelector()
        self.conns = []
        self.start = time.monotonic()
        self.sent_total = 0
        self.received = 0
        self.last_progress = 0.0

    def interest(self, conn, budget_left):
        events = 0 if conn.eof else selectors.EVENT_READ
        if conn.wants_write() and budget_left and conn.expected is not None:
            events |= selectors.EVENT_WRITE
        key = self.sel.get_map().get(conn.sock)
        if events == 0:
            if key:
                self.sel.unregister(conn.sock)
        elif key is None:
            self.sel.register(conn.sock, events, conn)
        elif key.events != events:
            self.sel.modify(conn.sock, events, conn)

    def budget(self):
        return int(self.args.rate * (time.monotonic() - self.start)) - self.sent_total

    def progress(self, force=False):
        now = time.monotonic()
        if force or now - self.last_progress >= 0.1:
            tmp = self.args.progress + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(self.received))
            os.replace(tmp, self.args.progress)
            self.last_progress = now

    def run(self):
        while not all(c.done() for c in self.conns):
            budget = self.budget()
            for conn in self.conns:
                if not conn.done():
                    self.interest(conn, budget > 0)
            # Sleep no longer than it takes the rate budget to refill a chunk.
            timeout = 0.1 if budget > 0 else min(0.1, CHUNK / self.args.rate)
            for key, events in self.sel.select(timeout):
                conn = key.data
                try:
                    if events & selectors.EVENT_READ:
                        self.received += conn.on_read()
                    if events & selectors.EVENT_WRITE and self.budget() > 0:
                        self.sent_total += conn.on_write(self.budget())
                except OSError as e:
                    conn.error = errno.errorcode.get(e.errno, str(e))
                if conn.done() and conn.sock in self.sel.get_map():
                    self.sel.unregister(conn.sock)
            self.progress()
        self.progress(force=True)

    def report(self):
        verdicts = [c.verdict() for c in self.conns]
        result = {"role": self.args.role, "conns": len(self.conns),
                  "complete": verdicts.count("complete"),
                  "mismatched": verdicts.count("mismatched"),
                  "errors": sorted({c.error for c in self.conns if c.error}),
                  "received": self.received}
        print(json.dumps(result), flush=True)
        return 0 if result["complete"] == self.args.conns else 1


def endpoint(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    return host, int(port)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("server", "client"))
    parser.add_argument("--listen", type=endpoint)
    parser.add_argument("--connect", type=endpoint)
    parser.add_argument("--conns", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--progress", required=True)
    args = parser.parse_args(argv)
    if (args.role == "server") != bool(args.listen) or \
       (args.role == "client") != bool(args.connect):
        parser.error("server needs --listen, client needs --connect")
    loop = Loop(args)
    loop.progress(force=True)
    if args.role == "server":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(args.listen)
        listener.listen(args.conns)
        while len(loop.conns) < args.conns:
            sock, _ = listener.accept()
            sock.setblocking(False)
            loop.conns.append(Conn(sock, "server", args.size))
        listener.close()
    else:
        for index in range(args.conns):
            sock = socket.create_connection(args.connect)
            sock.setblocking(False)
            loop.conns.append(Conn(sock, "client", args.size, index))
    loop.run()
    return loop.report()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
