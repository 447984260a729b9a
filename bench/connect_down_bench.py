#!/usr/bin/env python3
"""Connections opened while the network is down: connect() → first byte delivered.

Two hosts (network namespaces) and a local directory volume, both processes under the shim. The
server (this script in `server` mode) accepts and, for each connection, takes the time its first
8 bytes arrive; those bytes are the client's wall clock just before it called connect() (both hosts
share this machine's clock). The client opens N connections one after another with the link
silently down (connect fails at once: no route) and N with the link blackholed (the SYN goes
unanswered: the detection bound passes first).

The baseline, measured in the same run: the storage path's own one-way delay, half the round trip
of an 8-byte ping over a connection carried on the volume (DISKWIRE_MODE=storage). Target
(issue 10): connect → first byte within the detection bound plus that delay (plus scheduling).

Usage (root): bench/connect_down_bench.py [--conns 20] [--detect-ms 1000]
Needs DW_SHIM=/abs/path/libdiskwire.so (bazel build //shim:libdiskwire.so).
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))

import dwharness as h  # noqa: E402
from dwharness.shim import Diskwire  # noqa: E402
from netns_bench import cannot_run, percentile  # noqa: E402

PORT = 5001


def serve(addr, out):
    """Accepts forever; per connection: echo mode for pings, else one line
    with the first byte's delay in ms."""
    listener = socket.create_server((addr, PORT))
    while True:
        conn, _ = listener.accept()
        with conn:
            first = conn.recv(8, socket.MSG_WAITALL)
            arrived = time.time_ns()
            if first == b"PINGPING":
                while data := conn.recv(8, socket.MSG_WAITALL):
                    conn.sendall(data)
                continue
            if len(first) == 8:
                (started,) = struct.unpack("!q", first)
                with open(out, "a") as f:
                    f.write(f"{(arrived - started) / 1e6:.3f}\n")


def connect_many(addr, n):
    for _ in range(n):
        started = time.time_ns()
        with socket.create_connection((addr, PORT), timeout=60) as s:
            s.sendall(struct.pack("!q", started))
            s.shutdown(socket.SHUT_WR)
            s.recv(1)


def ping(addr, n):
    with socket.create_connection((addr, PORT), timeout=60) as s:
        s.sendall(b"PINGPING")
        rtts = []
        for _ in range(n):
            started = time.monotonic_ns()
            s.sendall(b"12345678")
            s.recv(8, socket.MSG_WAITALL)
            rtts.append((time.monotonic_ns() - started) / 1e6)
    print(" ".join(f"{r:.3f}" for r in rtts))


def read_delays(path, after):
    try:
        with open(path) as f:
            return [float(x) for x in f.read().split()][after:]
    except OSError:
        return []


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("server", "client", "ping"):
        mode, addr, arg = sys.argv[1], sys.argv[2], sys.argv[3]
        if mode == "server":
            serve(addr, arg)
        elif mode == "client":
            connect_many(addr, int(arg))
        else:
            ping(addr, int(arg))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=20)
    parser.add_argument("--detect-ms", type=int, default=1000)
    args = parser.parse_args()
    status = cannot_run(h)
    if status is not None:
        return status
    me = os.path.abspath(__file__)
    with h.TwoHosts() as net:
        dw = Diskwire(net, PORT, DETECT_MS=args.detect_ms, HEARTBEAT_MS=200)
        delays = net.path("delays")
        net.b.popen("server", [sys.executable, me, "server", net.b.addr, delays],
                    env=h.clean_env(dw.env("b")))
        h.wait_for(lambda: net.b.listening(PORT), 20, "the server")
        time.sleep(1)  # a heartbeat or two: the listener is advertised
        ping_env = h.clean_env(dw.env("a", MODE="storage"))
        rtts = subprocess.run(net.a.argv([sys.executable, me, "ping", net.b.addr,
                                          str(args.conns * 5)]),
                              env=ping_env, capture_output=True, text=True, timeout=300)
        # The first pings wait for the storage-mode session to start.
        one_way = [float(r) / 2 for r in rtts.stdout.split()][5:]
        results = {}
        for cut in ("down", "drop"):
            if cut == "down":
                net.cuts.link_down("a")
            else:
                net.cuts.blackhole("b")
            before = len(read_delays(delays, 0))
            run = subprocess.run(net.a.argv([sys.executable, me, "client", net.b.addr,
                                             str(args.conns)]),
                                 env=h.clean_env(dw.env("a")), capture_output=True,
                                 text=True, timeout=600)
            if run.returncode != 0:
                print(f"{cut}: client failed: {run.stderr[-2000:]}\n{dw.logs()}")
                return 1
            h.wait_for(lambda: len(read_delays(delays, before)) >= args.conns, 30,
                       f"{cut}: every first byte")
            results[cut] = read_delays(delays, before)
            net.cuts.restore()
    if not one_way:
        print(f"the storage-mode ping failed: {rtts.stderr[-2000:]}")
        return 1
    base50, base99 = percentile(one_way, 50), percentile(one_way, 99)
    print(f"storage path one-way delay (baseline, {len(one_way)} pings): "
          f"p50 {base50:.2f} ms   p99 {base99:.2f} ms")
    for cut, detect in (("down", 0), ("drop", args.detect_ms)):
        values = results[cut]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        bound = detect + base99
        print(f"link {cut:4s}: connect → first byte over {len(values)} connections: "
              f"p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {max(values):.1f} ms;  "
              f"bound {bound:.1f} ms (detection {detect} ms + storage p99), "
              f"p50 {p50 / bound:.2f} × the bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
