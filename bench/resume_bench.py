#!/usr/bin/env python3
"""Resume time of a real program: link heal → the stream back on TCP, over N heals.

One paced stock `nc` transfer under the shim between two hosts (network namespaces), with the
detection bound at its default (2000 ms). N times: the link goes down silently, the session fails
over to the volume, the link comes back, and two moments are taken after the heal:
  - resumed: the wall-clock time both hosts' diskwire logs say "back on the network";
  - first byte over TCP: the first moment the sender's link counter moves by more than 16 KiB
    (the stream, not ARP or a handshake), polled every 5 ms.
Prints p50/p99/max of each against the target of DESIGN.md §6: back on TCP ≤ 2 s (p50) after the
network heals. At the end the stream must have arrived byte-exact.

Usage (root): bench/resume_bench.py [--heals 20] [--down-s 4]
Needs DW_SHIM=/abs/path/libdiskwire.so (bazel build //shim:libdiskwire.so).
"""

import argparse
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))

import dwharness as h  # noqa: E402
from dwharness.shim import Diskwire  # noqa: E402
from netns_bench import cannot_run, percentile  # noqa: E402

RESUMED = re.compile(r"back on the network .*realtime_ns=(\d+)")
FAILED_OVER = "failing over to storage"
RATE = 2 * h.MiB


def count(path, needle):
    try:
        with open(path, errors="replace") as f:
            return f.read().count(needle)
    except OSError:
        return 0


def resumed_at(path, n):
    """The realtime_ns of the n-th resume in the log, or None."""
    try:
        with open(path, errors="replace") as f:
            found = RESUMED.findall(f.read())
    except OSError:
        return None
    return int(found[n - 1]) if len(found) >= n else None


def first_tcp_byte_ns(net, timeout_s):
    base = net.a.link_counters()["tx_bytes"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if net.a.link_counters()["tx_bytes"] - base > 16 * 1024:
            return time.time_ns()
        time.sleep(0.005)  # the polling interval of the measurement
    return None


def report(name, values):
    p50, p99 = percentile(values, 50), percentile(values, 99)
    print(f"  {name}: p50 {p50:.0f} ms   p99 {p99:.0f} ms   max {max(values):.0f} ms   "
          f"(target p50 ≤ 2000 ms: {'met' if p50 <= 2000 else 'NOT met'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heals", type=int, default=20)
    parser.add_argument("--down-s", type=float, default=4.0)
    args = parser.parse_args()
    status = cannot_run(h)
    if status is not None:
        return status
    size = int(RATE * (args.heals * (args.down_s + 4) + 10))
    resumed, first_byte = [], []
    with h.TwoHosts() as net:
        dw = Diskwire(net, 5001, PEER_TIMEOUT_MS=10000, HEARTBEAT_MS=200)
        xfer = h.NcTransfer(net, size=size, rate=RATE, env_sender=dw.env("a"),
                            env_receiver=dw.env("b")).start()
        xfer.wait_received(h.MiB, 30)
        for i in range(1, args.heals + 1):
            net.cuts.link_down("a")
            h.wait_for(lambda: count(dw.log_path("a"), FAILED_OVER) >= i and
                       count(dw.log_path("b"), FAILED_OVER) >= i, 30, f"failover {i}")
            time.sleep(args.down_s)  # the outage's length: the fault's schedule
            heal_ns = time.time_ns()
            net.cuts.link_up("a")
            tcp_ns = first_tcp_byte_ns(net, 20)
            h.wait_for(lambda: resumed_at(dw.log_path("a"), i) and
                       resumed_at(dw.log_path("b"), i), 30, f"resume {i}")
            both = max(resumed_at(dw.log_path("a"), i), resumed_at(dw.log_path("b"), i))
            resumed.append((both - heal_ns) / 1e6)
            first_byte.append((tcp_ns - heal_ns) / 1e6 if tcp_ns else float("inf"))
            print(f"heal {i:2d}: resumed {resumed[-1]:7.1f} ms, "
                  f"first byte over TCP {first_byte[-1]:7.1f} ms", flush=True)
            time.sleep(1.0)  # healthy for a moment before the next cut
        xfer.wait_done(size / RATE + 120)
        exact = xfer.sha_received() == xfer.sha_sent
    print(f"\nresume over {len(resumed)} heals (detection bound 2000 ms, outages "
          f"{args.down_s} s):")
    report("heal → both sides back on the network", resumed)
    report("heal → first byte over TCP", first_byte)
    print(f"  stream: {'byte-exact' if exact else 'ALTERED'} ({size} bytes)")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
