#!/usr/bin/env python3
"""Short connections for the bounded-volume test.

  short_conns.py serve ADDR:PORT        accept forever; read to EOF, echo, close
  short_conns.py dial ADDR:PORT N       N connections, one after another
  short_conns.py hold ADDR:PORT         one connection, held until killed
  short_conns.py churn ADDR:PORT N A,B,... [SETTLE_S]
      as dial, and after connection A, B, ... waits SETTLE_S seconds (default
      0), and up to SETTLE_S more while it holds more descriptors than at A,
      and prints what the process holds as a JSON line: rss_kib, fds,
      inotify_watches, threads, cpu_s
  short_conns.py idle_and_busy ADDR:PORT N SECONDS
      N connections held open, idle, while one more streams 1 KiB every
      millisecond for SECONDS; prints the read syscalls this process made
      per second meanwhile as a JSON line ({"reads_per_s": ...})
"""

import json
import os
import resource
import socket
import sys
import threading
import time


def serve(addr):
    host, port = addr.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(64)

    def handle(conn):
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(data)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def dial(addr, count):
    host, port = addr.rsplit(":", 1)
    for i in range(count):
        with socket.create_connection((host, int(port))) as s:
            payload = f"connection {i}\n".encode() * 10
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            if got != payload:
                sys.exit(f"connection {i}: echo mismatch")


def holdings():
    """What this process holds now (with the preload: the engine's too)."""
    rss = threads = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = os.listdir("/proc/self/fd")
    watches = 0
    targets = []  # what each descriptor is: a leak says what it leaks
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                watches += sum(1 for line in f if line.startswith("inotify wd:"))
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the listing's own fd, closed since
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_kib": rss, "fds": len(fds), "inotify_watches": watches,
            "threads": threads, "cpu_s": usage.ru_utime + usage.ru_stime,
            "fd_targets": sorted(targets)}


def settled_holdings(settle, baseline):
    """holdings() once the ended connections are let go: after `settle`
    seconds, and then, while it holds more descriptors or watches than
    `baseline` (an earlier checkpoint's; None for the first), up to `settle`
    seconds more, the least seen. The engine frees an ended session once its
    peer has let go too, which on a loaded machine comes late; what a leak
    holds never falls back."""
    time.sleep(settle)
    least = holdings()
    deadline = time.monotonic() + settle
    while (baseline is not None and time.monotonic() < deadline and
           (least["fds"] > baseline["fds"] or
            least["inotify_watches"] > baseline["inotify_watches"])):
        time.sleep(0.5)
        now = holdings()
        if (now["fds"], now["inotify_watches"]) < (least["fds"],
                                                   least["inotify_watches"]):
            least = now
    return least


def churn(addr, count, checkpoints, settle=0.0):
    host, port = addr.rsplit(":", 1)
    marks = {int(c) for c in checkpoints.split(",")}
    first = None
    for i in range(1, count + 1):
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
            if s.recv(16) != b"x":
                sys.exit(f"connection {i}: no echo")
        if i in marks:
            cpu = holdings()["cpu_s"]  # the connections', not the wait's
            held = settled_holdings(settle, first)
            first = first or held
            print(json.dumps({"done": i, **held, "cpu_s": cpu}), flush=True)


def read_syscalls():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    return 0


def idle_and_busy(addr, count, seconds):
    host, port = addr.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(count)]
    for s in idle:
        s.sendall(b"hello")  # each one carried, then quiet
    busy = socket.create_connection((host, int(port)))
    time.sleep(3)  # the engine has set them all up
    block = b"b" * 1024
    start, reads = time.monotonic(), read_syscalls()
    while time.monotonic() - start < seconds:
        busy.sendall(block)
        time.sleep(0.001)
    elapsed = time.monotonic() - start
    print(json.dumps({"reads_per_s": (read_syscalls() - reads) / elapsed}),
          flush=True)
    for s in idle + [busy]:
        s.close()


def hold(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(b"held\n")
    print("connected", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    {"serve": lambda: serve(sys.argv[2]), "dial": lambda: dial(sys.argv[2], int(sys.argv[3])),
     "hold": lambda: hold(sys.argv[2]),
     "idle_and_busy": lambda: idle_and_busy(sys.argv[2], int(sys.argv[3]),
                                            float(sys.argv[4])),
     "churn": lambda: churn(sys.argv[2], int(sys.argv[3]), sys.argv[4],
                            float(sys.argv[5]) if len(sys.argv) > 5 else 0.0),
     }[sys.argv[1]]()
