"""Stock nc under diskwire through two cut/heal cycles: after each heal the
stream goes back to the network (the link's byte counters move again at the
stream's rate) and, at the end, every byte has arrived exactly once.

Also: the resume listener is diskwire's, not the application's, and a stranger
that connects to it without the session's secret learns nothing and disturbs
nothing."""

import re
import socket
import time

import dwharness as h
import shim_testbase as base

SIZE = 48 * h.MiB
RATE = 3 * h.MiB  # bytes/s: a 16 s transfer, long enough for two cycles.


class ResumeTest(base.ShimTestCase):
    def resumes(self, node):
        return self.log_lines(node, "back on the network")

    def failovers(self, node):
        return self.log_lines(node, "failing over to storage")

    def network_bytes(self, seconds):
        """Bytes host a sent on the link in the next `seconds` seconds."""
        before = self.net.a.link_counters()["tx_bytes"]
        time.sleep(seconds)  # a measuring window, not synchronisation
        return self.net.a.link_counters()["tx_bytes"] - before

    def cut_and_heal(self, xfer, cycle):
        self.net.cuts.link_down("a")
        h.wait_for(lambda: self.failovers("a") >= cycle and self.failovers("b") >= cycle,
                   20, f"failover {cycle} on both hosts", last=self.dw.logs)
        received = xfer.received()
        h.wait_for(lambda: xfer.received() > received + RATE // 2, 20,
                   "the stream to move over the volume while the link is down",
                   last=self.dw.logs)
        self.assertLess(self.network_bytes(0.5), 64 * 1024,
                        "the link is down: nothing may cross it")
        healed = time.monotonic()
        self.net.cuts.link_up("a")
        h.wait_for(lambda: self.resumes("a") >= cycle and self.resumes("b") >= cycle,
                   20, f"resume {cycle} on both hosts", last=self.dw.logs)
        self.heal_to_resume.append(time.monotonic() - healed)
        # Back on the network: the link carries the stream again, at its rate.
        carried = self.network_bytes(1.0)
        self.assertGreater(carried, RATE // 2,
                           f"after heal {cycle} only {carried} bytes crossed the link\n"
                           + self.context(xfer))

    def test_two_cut_heal_cycles_return_to_the_network(self):
        self.heal_to_resume = []
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(SIZE // 8, 30)
        self.cut_and_heal(xfer, 1)
        self.cut_and_heal(xfer, 2)
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        print(f"heal -> resumed: {[round(t, 2) for t in self.heal_to_resume]} s")

    def test_a_stranger_on_the_resume_port_disturbs_nothing(self):
        xfer = self.nc(8 * h.MiB, 2 * h.MiB).start()
        xfer.wait_received(h.MiB, 30)
        port = self.resume_port("b")
        # Garbage, a hello-shaped message with a wrong MAC, and silence: each
        # is closed without an answer.
        for payload in (b"GET / HTTP/1.0\r\n\r\n", b"DWH\x01" + bytes(36 + 32), b""):
            answer = self.net.a.run(
                ["python3", "-c", STRANGER, self.net.b.addr, str(port), payload.hex()],
                check=False).stdout
            self.assertEqual(answer.strip(), "answer=", f"payload {payload!r}")
        received = xfer.received()
        h.wait_for(lambda: xfer.received() > received + h.MiB, 20,
                   "the stream to go on", last=self.dw.logs)
        self.assertEqual(self.failovers("a") + self.failovers("b"), 0,
                         "a stranger made a session fail over\n" + self.dw.logs())
        self.assert_byte_exact(xfer, base.transfer_bound(8 * h.MiB, 2 * h.MiB))

    def resume_port(self, node):
        """The resume port host `node`'s diskwire listens on (from its log)."""
        found = []

        def listening():
            path = self.dw.log_path(node)
            if h.file_size(path):
                with open(path, errors="replace") as f:
                    found[:] = re.findall(r"resume listener on port (\d+)", f.read())
            return bool(found)
        h.wait_for(listening, 20, "the resume listener", last=self.dw.logs)
        return int(found[-1])

    settings = {"LOG_LEVEL": "debug"}


# Connects, sends the payload, and prints what came back within 2 s.
STRANGER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(bytes.fromhex(sys.argv[3]))
s.settimeout(2)
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except (socket.timeout, ConnectionResetError):
    pass
print("answer=" + got.hex())
"""



class ResumeLunTest(ResumeTest):
    """The same over a LUN: one formatted image as a loop device per host."""

    volume = "lun"

if __name__ == "__main__":
    base.main()
