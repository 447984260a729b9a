"""Datagrams that crossed the volume look to the receiving program like
datagrams off the wire (issue 11): DISKWIRE_MODE=storage between two
namespaces, so that every selected datagram takes the volume. The receiver
sees epoll readiness, MSG_PEEK, the sender's address and port, IP_PKTINFO
with its own address, MSG_TRUNC's full length, and, when it does not read,
drops by its SO_RCVBUF as the kernel makes them (bounded memory), not an
unbounded queue.
"""

import glob
import json
import os
import sys
import unittest

import dwharness as h
import shim_testbase as base

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = 5405


class UdpSocketTest(base.ShimTestCase):
    select = f"udp:{PORT}"
    settings = {"MODE": "storage"}

    def test_a_carried_datagram_is_a_datagram(self):
        report = self.net.path("receiver.json")
        receiver = self.net.b.popen(
            "udp-receiver",
            [sys.executable, f"{HERE}/udp_socket_probe.py", "receive",
             self.net.b.addr, str(PORT), report],
            env=h.clean_env(self.dw.env("b")))
        self.wait_udp_receiver("b", PORT)
        sender = self.net.a.popen(
            "udp-sender",
            [sys.executable, f"{HERE}/udp_socket_probe.py", "send",
             self.net.b.addr, str(PORT)],
            env=h.clean_env(self.dw.env("a")))
        context = lambda: (receiver.describe() + "\n" + sender.describe() +
                           self.context())
        self.assertEqual(h.wait_exit(sender, 60), 0, context())
        self.assertEqual(h.wait_exit(receiver, 60), 0, context())
        with open(report) as f:
            got = json.load(f)
        self.assertEqual(got["epoll"], 1, context())
        self.assertEqual(got["peek"], "peek-me", context())
        self.assertEqual(got["after_peek"], "peek-me", context())
        self.assertTrue(got["source"].startswith(self.net.a.addr + ":"), context())
        self.assertEqual(got["pktinfo_data"], "pktinfo", context())
        self.assertEqual(got["pktinfo_addr"], self.net.b.addr, context())
        self.assertEqual(got["trunc_length"], len("truncate-me-please"), context())
        # A 4 KiB buffer holds a few of the 500 1000-byte datagrams.
        self.assertGreater(got["burst_received"], 0, context())
        self.assertLess(got["burst_received"], 100, context())
        # And they crossed the volume, not the network: the burst alone is
        # half a megabyte of the channel from a to b.
        carried = sum(os.path.getsize(p) for p in glob.glob(os.path.join(
            self.net.volume_of("a"), "channels", "u-*", "*.seg")))
        self.assertGreater(carried, 500 * 1000, context())


if __name__ == "__main__":
    unittest.main(verbosity=2)
