#!/usr/bin/env python3
"""Copies bytes from a file (or stdin) to stdout at a bounded rate.

Used to make a transfer last long enough for a cut to land mid-stream, on the
sending side (file -> nc) or the receiving side (nc -> file, a slow reader).

  pacer.py --rate BYTES_PER_S [--input FILE] [--gate FILE] [--chunk BYTES]

--gate FILE: write nothing until FILE exists (the harness creates it when the
  test is ready, e.g. after a cut that must come before the first byte).
Exit status: 0 when everything was copied, 2 on bad arguments, 3 when stdout
closed early (the consumer died).
"""

import argparse
import os
import sys
import time


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True,
                        help="bytes per second, > 0")
    parser.add_argument("--input", help="file to copy (default: stdin)")
    parser.add_argument("--gate", help="wait for this file before the first byte")
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.chunk <= 0:
        parser.error("--rate and --chunk must be positive")
    return args


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv):
    args = parse_args(argv)
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    if args.gate:
        while not os.path.exists(args.gate):
            time.sleep(0.02)  # Polls for the harness's go signal.
    start = time.monotonic()
    sent = 0
    try:
        while True:
            data = source.read1(args.chunk) if hasattr(source, "read1") else source.read(args.chunk)
            if not data:
                return 0
            # Rate limit: byte n may leave at start + n / rate.
            delay = start + sent / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            write_all(1, data)
            sent += len(data)
    except BrokenPipeError:
        print(f"pacer: output closed after {sent} bytes", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
