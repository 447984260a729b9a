#!/usr/bin/env python3
"""Process start: what preloading diskwire costs a program that starts and exits.

Runs /bin/true (or --program) with no preload, with the preload and no DISKWIRE_*
variable, and with the preload and a configuration (a volume and a selection),
alternating, and prints for each mode:
  - the CPU time (user + system, from wait4's rusage) per run: median of
    --batches batches of --runs runs, and the ratio to no preload measured in
    the same run;
  - the instructions per run counted by valgrind's callgrind (the whole
    process, the dynamic loader included): steady whatever the machine does.

Usage: bench/start_bench.py [--runs 200] [--batches 5] [--program /bin/true]
Needs DW_SHIM=/abs/path/libdiskwire.so (bazel build //shim:libdiskwire.so),
or finds it in bazel-bin.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shim_path():
    path = os.environ.get("DW_SHIM") or os.path.join(REPO, "bazel-bin", "shim",
                                                     "libdiskwire.so")
    if not os.path.isfile(path):
        sys.exit(f"{path} not found: bazel build //shim:libdiskwire.so, or set DW_SHIM")
    return os.path.realpath(path)


def environments(shim, volume):
    base = {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("DISKWIRE_")}
    configured = dict(base, LD_PRELOAD=shim, DISKWIRE_VOLUME=volume,
                      DISKWIRE_SELECT="5001")
    return {"no preload": base, "preload": dict(base, LD_PRELOAD=shim),
            "preload+config": configured}


def cpu_per_run(program, env, runs):
    """Mean CPU seconds (user + system) of one run, over `runs` runs."""
    total = 0.0
    for _ in range(runs):
        pid = os.posix_spawn(program, [program], env)
        _, status, usage = os.wait4(pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            sys.exit(f"{program} failed: status {status}")
        total += usage.ru_utime + usage.ru_stime
    return total / runs


def instructions(program, env):
    if not shutil.which("valgrind"):
        return None
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", program],
        env=env, capture_output=True, text=True, timeout=120)
    found = re.search(r"Collected : (\d+)", result.stderr)
    return int(found.group(1)) if found else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--program", default="/bin/true")
    args = parser.parse_args()
    shim = shim_path()
    with tempfile.TemporaryDirectory(prefix="dw-start-") as volume:
        envs = environments(shim, volume)
        cpu = {mode: [] for mode in envs}
        for _ in range(args.batches):
            for mode, env in envs.items():  # alternating: the same noise for all
                cpu[mode].append(cpu_per_run(args.program, env, args.runs))
        counts = {mode: instructions(args.program, env) for mode, env in envs.items()}
    base_cpu = statistics.median(cpu["no preload"])
    base_count = counts["no preload"]
    print(f"{args.program}: {args.batches} batches of {args.runs} runs per mode, "
          f"alternating; shim {shim}")
    for mode in envs:
        median = statistics.median(cpu[mode])
        line = (f"  {mode:15s} CPU {median * 1e6:8.0f} us/run  "
                f"{median / base_cpu:5.2f}x")
        if counts[mode] and base_count:
            line += (f"   instructions {counts[mode]:>10,d}/run  "
                     f"{counts[mode] / base_count:5.2f}x")
        print(line)


if __name__ == "__main__":
    main()
