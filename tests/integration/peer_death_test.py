"""The peer process is killed while the network is down: the survivor's
program must get an error (not a clean end of stream, not a hang) within
the peer timeout plus detection and slack."""

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 4 * h.MiB
BOUND_S = (base.DETECT_MS + base.PEER_TIMEOUT_MS) / 1000 + 20


class PeerDeathTest(base.ShimTestCase):
    def start_and_cut(self):
        stream = self.peers(SIZE, RATE).start()
        stream.wait_received(SIZE // 8, 30)
        self.net.cuts.link_down("a")
        return stream

    def test_sender_gets_an_error_when_the_receiver_dies(self):
        stream = self.start_and_cut()
        stream.procs["recv"].signal(9)
        report = self.peer_report(stream, "send", BOUND_S)
        self.assertEqual(report["result"], "error", self.context())
        self.assertLess(report["bytes"], SIZE)

    def test_receiver_gets_an_error_when_the_sender_dies(self):
        stream = self.start_and_cut()
        stream.procs["send"].signal(9)
        report = self.peer_report(stream, "recv", BOUND_S)
        self.assertEqual(report["result"], "error", self.context())
        self.assertLess(report["bytes"], SIZE)



class PeerDeathLunTest(PeerDeathTest):
    """The same over a LUN: one formatted image as a loop device per host."""

    volume = "lun"

if __name__ == "__main__":
    base.main()
