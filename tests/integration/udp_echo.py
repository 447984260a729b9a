#!/usr/bin/env python3
"""A UDP echo with sequence numbers, for tests of diskwire's UDP relay.

  udp_echo.py server ADDR PORT REPORT
      Answers every datagram with the same bytes, to its source; appends
      "SEQ SOURCE" of each to REPORT (one line, flushed).
  udp_echo.py client ADDR PORT REPORT --interval S --duration S [--connect]
      Sends "SEQ <padding>" every S seconds for the duration, receives the
      echoes, and writes a JSON report: the send time of each sequence number
      and the (seq, time, source) of each echo, in arrival order.

With --close-others-at S (either mode), S seconds after it started the
program closes every descriptor but its socket and stdio, as a daemon does
with the ones it did not open itself.

Both use plain sendto/recvfrom (send/recv on a connected socket with
--connect), through select(), as a stock program would.
"""

import json
import os
import select
import socket
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def close_others(keep):
    """Closes every fd from 3 up but `keep` (close_range, as Python does)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)


def server(addr, port, report, close_at):
    start = time.monotonic()
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    out = open(report, "a")
    while True:
        data, source = s.recvfrom(65535)
        s.sendto(data, source)
        if close_at is not None and time.monotonic() - start >= close_at:
            close_at = None
            out.close()
            close_others(s.fileno())
            out = open(report, "a")
        seq = data.split(b" ", 1)[0].decode()
        out.write(f"{seq} {source[0]}:{source[1]}\n")
        out.flush()


def client(addr, port, report, interval, duration, connect, close_at):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    if connect:
        s.connect((addr, port))
    sent = {}
    echoes = []
    start = time.monotonic()
    start_wall = time.time()
    next_send = start
    seq = 0
    end = start + duration
    while True:
        now = time.monotonic()
        if now >= end + 3:  # the last echoes' grace
            break
        if now >= next_send and now < end:
            data = b"%d " % seq + b"x" * 100
            if connect:
                s.send(data)
            else:
                s.sendto(data, (addr, port))
            sent[seq] = now - start
            seq += 1
            next_send += interval
        wait = max(0.0, min(next_send, end + 3) - time.monotonic())
        ready, _, _ = select.select([s], [], [], wait)
        if ready:
            data, source = s.recvfrom(65535)
            echoes.append([int(data.split(b" ", 1)[0]), time.monotonic() - start,
                           f"{source[0]}:{source[1]}"])
        if close_at is not None and time.monotonic() - start >= close_at:
            close_at = None
            close_others(s.fileno())
    with open(report, "w") as out:
        json.dump({"sent": sent, "echoes": echoes, "start_wall": start_wall},
                  out)


def main():
    mode, addr, port, report = sys.argv[1:5]
    close_at = None
    if "--close-others-at" in sys.argv:
        close_at = float(sys.argv[sys.argv.index("--close-others-at") + 1])
    if mode == "server":
        server(addr, int(port), report, close_at)
        return
    args = sys.argv[5:]
    interval = float(args[args.index("--interval") + 1])
    duration = float(args[args.index("--duration") + 1])
    client(addr, int(port), report, interval, duration, "--connect" in args,
           close_at)


if __name__ == "__main__":
    main()
