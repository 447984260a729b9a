"""Self-tests of the harness's cuts with plain TCP (no diskwire): a healthy
transfer is byte-exact, every silent cut stalls it, a reset fails the sender,
a flap and a restore let TCP finish."""

import unittest

import dwharness as h
from dwharness.peers import PeerStream

SIZE = 4 * h.MiB
RATE = 4 * h.MiB  # bytes/s: about a second of transfer.
CUT_AT = h.MiB
STALL_S = 1.5  # A stalled transfer makes no progress for this long...
STALL_BOUND_S = 3.0  # ...and is still not done this long after.


class CutTest(unittest.TestCase):
    def setUp(self):
        self.net = h.TwoHosts()
        self.addCleanup(self.net.close)

    def start(self, **kwargs):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, **kwargs).start()
        xfer.wait_received(CUT_AT, 20)
        return xfer

    def assert_complete(self, xfer, timeout):
        status = xfer.wait_done(timeout)
        self.assertEqual(status["send"], 0, xfer.describe())
        self.assertEqual(status["recv"], 0, xfer.describe())
        self.assertEqual(xfer.received(), SIZE)
        self.assertEqual(xfer.sha_received(), xfer.sha_sent)

    def assert_stalled(self, xfer):
        stuck = h.wait_stable(xfer.received, STALL_S, 10, "the received byte count")
        self.assertLess(stuck, SIZE)
        self.assertTrue(h.still_running_after(xfer.procs["recv"], STALL_BOUND_S),
                        "the receiver finished through a cut link")
        self.assertEqual(xfer.received(), stuck)

    def test_healthy_transfer_is_byte_exact(self):
        self.assert_complete(self.start(), 30)

    def test_link_down_on_sender_stalls_until_link_up(self):
        xfer = self.start()
        self.net.cuts.link_down("a")
        self.assert_stalled(xfer)
        self.net.cuts.link_up("a")
        self.assert_complete(xfer, 40)

    def test_link_down_on_receiver_stalls(self):
        xfer = self.start()
        self.net.cuts.link_down("b")
        self.assert_stalled(xfer)

    def test_blackhole_stalls_until_restore(self):
        xfer = self.start()
        self.net.cuts.blackhole("b", "both")
        self.assert_stalled(xfer)
        self.net.cuts.restore()
        self.assert_complete(xfer, 40)

    def test_one_way_partition_of_data_stalls(self):
        xfer = self.start()
        self.net.cuts.one_way(src="a")
        self.assert_stalled(xfer)

    def test_one_way_partition_of_acks_stalls(self):
        xfer = self.start()
        self.net.cuts.one_way(src="b")
        self.assert_stalled(xfer)

    def test_reset_fails_the_sender_with_econnreset(self):
        stream = PeerStream(self.net, size=SIZE, rate=RATE).start()
        stream.wait_received(CUT_AT, 20)
        self.net.cuts.reset("b", "in")
        report = stream.wait_end("send", 15)
        self.assertEqual(report["result"], "error")
        self.assertIn(report["errno"], ("ECONNRESET", "EPIPE"))
        self.assertLess(stream.received(), SIZE)

    def test_reset_ends_stock_nc_early(self):
        # netcat-openbsd exits 0 on a reset: the stream is merely cut short.
        xfer = self.start()
        self.net.cuts.reset("b", "both")
        h.wait_exit(xfer.procs["send"], 15)
        self.assertLess(xfer.received(), SIZE)

    def test_flap_lets_plain_tcp_finish(self):
        xfer = self.start()
        flapper = self.net.cuts.start_flap(down_s=1, up_s=1, times=3, side="a")
        self.assertTrue(flapper.join(30))
        self.assert_complete(xfer, 40)
        self.assertEqual([what for _, what in self.net.cuts.log],
                         ["link down on a", "link up on a"] * 3)

    def test_cut_before_the_first_byte_stalls(self):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, gate=True).start()
        xfer.wait_established(20)
        self.net.cuts.link_down("a")
        xfer.go()
        self.assert_stalled(xfer)

    def test_cut_after_the_senders_fin_strands_unacknowledged_data(self):
        h.hold_data_in_sender(self.net)
        xfer = h.NcTransfer(self.net, size=3 * h.MiB, rate=256 * h.MiB,
                            slow_reader_rate=h.MiB).start()
        h.wait_sender_fin(xfer, 20)
        self.net.cuts.link_down("a")
        self.assert_stalled(xfer)

    def test_bad_cut_arguments_are_rejected(self):
        with self.assertRaisesRegex(ValueError, "direction"):
            self.net.cuts.blackhole("a", "sideways")
        with self.assertRaisesRegex(ValueError, "direction"):
            self.net.cuts.reset("a", "out")


def tearDownModule():
    assert not h.own_namespaces(), f"left behind: {h.own_namespaces()}"


if __name__ == "__main__":
    h.skip_unless_netns()
    unittest.main(verbosity=2)
