#!/usr/bin/env python3
"""Memory per selected connection: the RSS of one process holding N
connections, idle and then after streaming through each.

A sink (no preload) accepts on loopback and reads everything. The client, run
once without the preload and once with it (DISKWIRE_SELECT = the sink's port,
a local directory volume), opens N connections, reports its RSS, then writes
--mib MiB through each connection in 64 KiB writes (round robin, so that
every connection keeps bytes in flight), waits until the sink has everything,
and reports its RSS again. Prints both, and the difference per connection
against the run without diskwire (target, issue 15: no more than the replay
bytes a connection actually holds + 256 KiB; on loopback the sink keeps up, so
a connection holds next to nothing once the stream has drained).

Usage: bench/memory_bench.py [--conns 1000] [--mib 8]
Needs DW_SHIM=/abs/path/libdiskwire.so or bazel-bin's.
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 64 * 1024


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def client(port, conns, mib):
    resource.setrlimit(resource.RLIMIT_NOFILE, (conns + 256, conns + 256))
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    time.sleep(1)  # the engine's heartbeat has listed them
    idle = rss_kib()
    block = os.urandom(CHUNK)
    for _ in range(mib * 1024 * 1024 // CHUNK):
        for s in socks:
            s.sendall(block)
    for s in socks:
        s.shutdown(socket.SHUT_WR)
    for s in socks:
        s.recv(1)  # the sink closes once it has read everything
    streamed = rss_kib()
    print(f"{idle} {streamed}", flush=True)
    for s in socks:
        s.close()


def sink(listener, conns, total):
    got = [0]
    lock = threading.Lock()

    def serve(c):
        n = 0
        while data := c.recv(1 << 20):
            n += len(data)
        with lock:
            got[0] += n
        c.close()

    threads = []
    for _ in range(conns):
        c, _ = listener.accept()
        t = threading.Thread(target=serve, args=(c,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if got[0] != total:
        sys.exit(f"sink got {got[0]} of {total} bytes")


def run(env, conns, mib):
    listener = socket.create_server(("127.0.0.1", 0), backlog=conns)
    port = listener.getsockname()[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (conns + 256, conns + 256))
    serving = threading.Thread(target=sink, args=(listener, conns, conns * mib << 20))
    serving.start()
    out = subprocess.run(
        [sys.executable, __file__, "--client", str(port), "--conns", str(conns),
         "--mib", str(mib)],
        env=dict(env, DW_BENCH_PORT=str(port)), capture_output=True, text=True,
        timeout=1800)
    serving.join()
    listener.close()
    if out.returncode != 0:
        sys.exit(f"client failed: {out.stderr[-2000:]}")
    idle, streamed = (int(x) for x in out.stdout.split())
    return idle, streamed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--mib", type=int, default=8)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.conns, args.mib)
        return
    shim = os.environ.get("DW_SHIM") or os.path.join(REPO, "bazel-bin", "shim",
                                                     "libdiskwire.so")
    base = {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("DISKWIRE_")}
    plain_idle, plain_streamed = run(base, args.conns, args.mib)
    with tempfile.TemporaryDirectory(prefix="dw-mem-") as volume:
        # The port is known only once the sink listens: select every port of
        # loopback connections (the bench's only ones).
        env = dict(base, LD_PRELOAD=os.path.realpath(shim), DISKWIRE_VOLUME=volume,
                   DISKWIRE_SELECT="127.0.0.1:*")
        dw_idle, dw_streamed = run(env, args.conns, args.mib)
    n = args.conns
    print(f"{n} connections, {args.mib} MiB streamed through each; RSS of the client:")
    print(f"  idle:     without {plain_idle / 1024:8.1f} MiB   with diskwire "
          f"{dw_idle / 1024:8.1f} MiB   +{(dw_idle - plain_idle) / n:7.1f} KiB/connection")
    print(f"  streamed: without {plain_streamed / 1024:8.1f} MiB   with diskwire "
          f"{dw_streamed / 1024:8.1f} MiB   +{(dw_streamed - plain_streamed) / n:7.1f} "
          f"KiB/connection")


if __name__ == "__main__":
    main()
