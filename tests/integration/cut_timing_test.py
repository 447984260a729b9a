"""The cut at the edges of a stream: before its first byte (the connection is
up, nothing sent yet) and after the sender's FIN (everything handed to the
kernel and the FIN queued, much of it not yet acknowledged)."""

import os
import subprocess
import sys
import time

import dwharness as h
import shim_testbase as base

SIZE = 8 * h.MiB


class CutTimingTest(base.ShimTestCase):
    def test_cut_before_the_first_byte(self):
        xfer = self.nc(SIZE, 4 * h.MiB, gate=True).start()
        xfer.wait_established(30)
        self.net.cuts.link_down("a")
        xfer.go()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, 4 * h.MiB))

    def test_cut_after_the_senders_fin(self):
        h.hold_data_in_sender(self.net)
        xfer = self.nc(3 * h.MiB, 256 * h.MiB, slow_reader_rate=h.MiB).start()
        h.wait_sender_fin(xfer, 30)
        self.assertLess(xfer.received(), xfer.size)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(3 * h.MiB, h.MiB))


# Sends a file, says so, and exits (closing the socket) once the gate exists.
EXIT_SENDER = """
import os, socket, sys, time
host, port, source, sent, gate = sys.argv[1:]
s = socket.create_connection((host, int(port)))
s.sendall(open(source, "rb").read())
open(sent, "w").close()
while not os.path.exists(gate):
    time.sleep(0.01)
"""


class ExitAfterCutTest(base.ShimTestCase):
    # Long, so that waiting it from the exit instead of from the cut shows.
    settings = {"DETECT_MS": 3000}

    def test_a_sender_exiting_after_a_cut_waits_the_bound_from_the_cut(self):
        """Unacknowledged bytes at exit are carried once the path is known
        dead: the bound counts from the cut (the last ACK), not from the
        exit. The receiver, which reads nothing until well after the sender's
        process and its heartbeat are gone, still gets every byte and the end
        of file."""
        h.hold_data_in_sender(self.net)
        size = 4 * h.MiB  # more than the socket pair holds
        source, out = self.net.path("src"), self.net.path("out")
        sha = h.make_data(source, size)
        sent, gate = self.net.path("sent"), self.net.path("gate")
        read_gate = self.net.path("read-gate")
        with open(out, "wb") as f:
            recv = self.net.b.popen("recv", ["nc", "-d", "-l", str(base.PORT)],
                                    env=h.clean_env(self.dw.env("b")),
                                    stdout=subprocess.PIPE)
            reader = self.net.b.popen("reader", h.pacer_argv(h.MiB, gate=read_gate),
                                      stdin=recv.popen.stdout, stdout=f)
            recv.popen.stdout.close()
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
        sender = self.net.a.popen(
            "send", ["/usr/bin/python3", "-c", EXIT_SENDER, self.net.b.addr,
                     str(base.PORT), source, sent, gate],
            env=h.clean_env(self.dw.env("a")))
        h.wait_for(lambda: "ESTAB" in self.net.a.tcp_states(base.PORT), 30,
                   "the sender to connect", last=sender.describe)
        time.sleep(1)  # Its kernel fills with bytes nobody acknowledges.
        self.net.cuts.link_down("a")
        cut = time.monotonic()
        time.sleep(0.7 * 3)
        open(gate, "w").close()
        h.wait_for(lambda: os.path.exists(sent), 30, "the sender to hand over its bytes",
                   last=sender.describe)
        self.assertEqual(h.wait_exit(sender, 30), 0, self.context())
        left_after = time.monotonic() - cut
        print(f"\nthe sender left {left_after:.2f} s after the cut (bound 3 s)",
              file=sys.stderr)
        self.assertLess(left_after, 3 + 1.5, self.context())
        # Longer than the peer timeout: the sender's heartbeat is long gone.
        time.sleep(base.PEER_TIMEOUT_MS / 1000 + 2)
        open(read_gate, "w").close()
        self.assertEqual(h.wait_exit(recv, base.transfer_bound(size, h.MiB)), 0,
                         self.context())
        self.assertEqual(h.wait_exit(reader, 30), 0, self.context())
        self.assertEqual(h.file_size(out), size, self.context())
        self.assertEqual(h.sha256_file(out), sha, self.context())


if __name__ == "__main__":
    base.main()
