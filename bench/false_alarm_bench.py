#!/usr/bin/env python3
"""No false alarms with a short detection bound: a saturated link is not a dead one.

Two hosts (network namespaces) joined by a veth with a LAN-like delay (netem, --delay-ms each
way), diskwire on both with DISKWIRE_DETECT_MS=--detect-ms. For --seconds, a saturating
`iperf3` stream and a latency-sensitive `sockperf` ping-pong run side by side on the link, both
selected. Counts the failovers diskwire logged on either host (target, issue 15: none) and prints
the throughput and the ping-pong latency they got.

Usage (root): bench/false_alarm_bench.py [--seconds 60] [--detect-ms 200] [--delay-ms 0.2]
Needs DW_SHIM=/abs/path/libdiskwire.so (bazel build //shim:libdiskwire.so).
"""

import argparse
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "netns"))

import dwharness as h  # noqa: E402
from dwharness.shim import Diskwire  # noqa: E402
from netns_bench import cannot_run  # noqa: E402

IPERF_PORT, SOCKPERF_PORT = 5201, 11111


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--detect-ms", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=0.2)
    args = parser.parse_args()
    status = cannot_run(h)
    if status is not None:
        return status
    with h.TwoHosts() as net:
        delay = f"netem delay {args.delay_ms} ms each way"
        for host in (net.a, net.b):
            added = host.run(["tc", "qdisc", "add", "dev", "dw0", "root", "netem", "delay",
                              f"{args.delay_ms}ms"], check=False)
            if added.returncode != 0:
                delay = f"no added delay (netem: {added.stderr.strip()})"
        dw = Diskwire(net, f"{IPERF_PORT},{SOCKPERF_PORT}", DETECT_MS=args.detect_ms,
                      PEER_TIMEOUT_MS=max(4 * args.detect_ms, 2000), HEARTBEAT_MS=200)
        servers = [
            net.b.popen("iperf3-s", ["iperf3", "-s", "-p", str(IPERF_PORT)],
                        env=h.clean_env(dw.env("b"))),
            net.b.popen("sockperf-s", ["sockperf", "server", "--tcp", "-i", net.b.addr,
                                       "-p", str(SOCKPERF_PORT)],
                        env=h.clean_env(dw.env("b"))),
        ]
        h.wait_for(lambda: net.b.listening(IPERF_PORT) and net.b.listening(SOCKPERF_PORT),
                   20, "iperf3 and sockperf to listen")
        iperf_out, sock_out = net.path("iperf.json"), net.path("sockperf.txt")
        with open(iperf_out, "wb") as f1, open(sock_out, "wb") as f2:
            iperf = net.a.popen("iperf3-c", ["iperf3", "-c", net.b.addr, "-p", str(IPERF_PORT),
                                             "-t", str(args.seconds), "-J"],
                                env=h.clean_env(dw.env("a")), stdout=f1)
            ping = net.a.popen("sockperf-c", ["sockperf", "pp", "--tcp", "-i", net.b.addr,
                                              "-p", str(SOCKPERF_PORT), "-m", "64",
                                              "-t", str(args.seconds)],
                               env=h.clean_env(dw.env("a")), stdout=f2)
            h.wait_exit(iperf, args.seconds + 60)
            h.wait_exit(ping, args.seconds + 60)
        for s in servers:
            s.kill()
        failovers = 0
        for node in ("a", "b"):
            if h.file_size(dw.log_path(node)):
                with open(dw.log_path(node)) as f:
                    for line in f:
                        if "failing over" in line:
                            failovers += 1
                            print(f"  {node}: {line.strip()}")
        with open(iperf_out) as f:
            gbps = json.load(f)["end"]["sum_received"]["bits_per_second"] / 1e9
        with open(sock_out) as f:
            text = f.read()
        p50 = re.search(r"percentile 50\.000 =\s*([\d.]+)", text)
        p99 = re.search(r"percentile 99\.000 =\s*([\d.]+)", text)
    print(f"{args.seconds} s of saturating iperf3 + sockperf ping-pong, DETECT_MS={args.detect_ms}, "
          f"{delay}:")
    print(f"  iperf3 {gbps:.2f} Gbit/s; sockperf p50 {p50.group(1) if p50 else '?'} us, "
          f"p99 {p99.group(1) if p99 else '?'} us")
    print(f"  failovers logged: {failovers} (target 0)")
    return 0 if failovers == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
