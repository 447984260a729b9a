#!/usr/bin/env python3
"""Both ends of tests/integration/udp_socket_test.py.

  udp_socket_probe.py receive ADDR PORT REPORT
  udp_socket_probe.py send ADDR PORT

The receiver checks, on datagrams that crossed the volume, what a program
sees of datagrams off the wire: epoll readiness, MSG_PEEK, the source address,
IP_PKTINFO, MSG_TRUNC, and SO_RCVBUF drops when it does not read; it writes a
JSON report. The sender sends the datagrams it expects, in phases.
"""

import json
import select
import socket
import struct
import sys
import time

N_BURST = 500
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # <linux/in.h>
BURST_SIZE = 1000


def receive(addr, port, report):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind((addr, port))
    out = {}
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLIN)
    out["epoll"] = len(ep.poll(30))
    out["peek"] = s.recv(100, socket.MSG_PEEK).decode()
    data, source = s.recvfrom(100)
    out["after_peek"] = data.decode()
    out["source"] = f"{source[0]}:{source[1]}"
    data, anc, _, _ = s.recvmsg(100, socket.CMSG_SPACE(12))
    out["pktinfo_data"] = data.decode()
    for level, kind, value in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            _, spec_dst, addr_bytes = struct.unpack("i4s4s", value[:12])
            out["pktinfo_addr"] = socket.inet_ntoa(addr_bytes)
    s.settimeout(30)
    n = s.recv_into(bytearray(4), 4, socket.MSG_TRUNC)
    out["trunc_length"] = n
    time.sleep(6)  # the burst arrives meanwhile, into a full buffer
    s.setblocking(False)
    count = 0
    while True:
        try:
            s.recv(2000)
            count += 1
        except BlockingIOError:
            break
    out["burst_received"] = count
    with open(report, "w") as f:
        json.dump(out, f)


def send(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for data in (b"peek-me", b"pktinfo", b"truncate-me-please"):
        s.sendto(data, (addr, port))
        time.sleep(0.5)
    time.sleep(1)
    for i in range(N_BURST):
        s.sendto(b"%06d" % i + b"b" * (BURST_SIZE - 6), (addr, port))


def main():
    mode, addr, port = sys.argv[1:4]
    if mode == "receive":
        receive(addr, int(port), sys.argv[4])
    else:
        send(addr, int(port))


if __name__ == "__main__":
    main()
