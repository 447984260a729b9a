#!/usr/bin/env python3
"""A UDP echo with sequence numbers, for tests of diskwire's UDP relay.

  udp_echo.py server ADDR PORT REPORT
      Answers every datagram with the same bytes, to its source; appends
      "SEQ SOURCE" of each to REPORT (one line, flushed).
  udp_echo.py client ADDR PORT REPORT --interval S --duration S [--connect]
      Sends "SEQ <padding>" every S seconds for the duration, receives the
      echoes, and writes a JSON report: the send time of each sequence number
      and the (seq, time, source) of each echo, in arrival order.

Both use plain sendto/recvfrom (send/recv on a connected socket with
--connect), through select(), as a stock program would.
"""

import json
import select
import socket
import sys
import time


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def server(addr, port, report):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    with open(report, "a") as out:
        while True:
            data, source = s.recvfrom(65535)
            s.sendto(data, source)
            seq = data.split(b" ", 1)[0].decode()
            out.write(f"{seq} {source[0]}:{source[1]}\n")
            out.flush()


def client(addr, port, report, interval, duration, connect):
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
    with open(report, "w") as out:
        json.dump({"sent": sent, "echoes": echoes, "start_wall": start_wall},
                  out)


def main():
    mode, addr, port, report = sys.argv[1:5]
    if mode == "server":
        server(addr, int(port), report)
        return
    args = sys.argv[5:]
    interval = float(args[args.index("--interval") + 1])
    duration = float(args[args.index("--duration") + 1])
    client(addr, int(port), report, interval, duration, "--connect" in args)


if __name__ == "__main__":
    main()
