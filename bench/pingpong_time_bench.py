#!/usr/bin/env python3
"""Wall time of the healthy path: what diskwire adds to a loopback TCP
ping-pong, and how much of it comes with the engine alone.

Runs bench/tcp_pingpong_loop (one process: send, receive, send back, receive)
pinned to one CPU in three modes, alternating (ABC, then CBA):
  - no preload;
  - the preload with a volume and a selection that matches nothing: the
    engine and its threads exist, the sockets are the kernel's;
  - the preload selecting the loop's port: every call crosses the engine.
Prints, for each mode, the median over --pairs of its time divided by the
no-preload time of the same pair, and the first quartile. The instruction
count of the same loop (bench/instructions_bench.sh) is the steady figure;
this one says what it costs in time on this machine, noise included.

Usage: bench/pingpong_time_bench.py [--pairs 10] [--rounds 100000]
                                    [--size 64] [--cpu 0]
Needs DW_SHIM=/abs/path/libdiskwire.so or bazel-bin's, and
bazel-bin/bench/tcp_pingpong_loop (bazel build //bench:tcp_pingpong_loop).
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def built(path, target):
    if not os.path.isfile(path):
        sys.exit(f"{path} not found: bazel build {target}")
    return os.path.realpath(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=100000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--cpu", default="0")
    a = p.parse_args()
    shim = built(os.environ.get("DW_SHIM") or
                 os.path.join(REPO, "bazel-bin", "shim", "libdiskwire.so"),
                 "//shim:libdiskwire.so")
    loop = built(os.path.join(REPO, "bazel-bin", "bench", "tcp_pingpong_loop"),
                 "//bench:tcp_pingpong_loop")
    volume = tempfile.mkdtemp(prefix="dw-pingpong-")
    base = {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("DISKWIRE_")}

    def run(mode):
        port = random.randint(20000, 60000)
        env = dict(base)
        if mode != "none":
            env.update(LD_PRELOAD=shim, DISKWIRE_VOLUME=volume,
                       DISKWIRE_SELECT=str(port if mode == "selected" else 1))
        start = time.perf_counter()
        subprocess.run(["taskset", "-c", a.cpu, loop, str(port), str(a.rounds),
                        str(a.size)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    modes = ["none", "engine only", "selected"]
    ratios = {m: [] for m in modes[1:]}
    try:
        for i in range(a.pairs):
            times = {m: run(m) for m in (modes if i % 2 == 0 else modes[::-1])}
            for m in modes[1:]:
                ratios[m].append(times[m] / times["none"])
    finally:
        shutil.rmtree(volume, ignore_errors=True)
    print(f"loopback TCP ping-pong, {a.size}-byte messages, {a.rounds} rounds, "
          f"CPU {a.cpu}, {a.pairs} alternating runs (time / no preload):")
    for m in modes[1:]:
        r = sorted(ratios[m])
        print(f"  {m:12} median {statistics.median(r):.3f}  "
              f"first quartile {r[len(r) // 4]:.3f}")


if __name__ == "__main__":
    main()
