"""What diskwire must leave alone: a connection it does not select behaves
exactly as plain TCP (a cut stalls it), and a peer without diskwire still
gets a byte-exact stream on a healthy link."""

import dwharness as h
import shim_testbase as base

SIZE = 8 * h.MiB
RATE = 8 * h.MiB


class SelectionTest(base.ShimTestCase):
    select = base.PORT + 1  # Not the port the transfers use.

    def test_unselected_connection_stalls_like_plain_tcp(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(SIZE // 4, 30)
        self.net.cuts.link_down("a")
        stuck = h.wait_stable(xfer.received, 3, 20, "the received byte count")
        self.assertLess(stuck, SIZE)
        self.assertTrue(h.still_running_after(xfer.procs["recv"], 3), self.context(xfer))

    def test_peer_without_diskwire_gets_the_stream(self):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, port=self.select,
                            env_sender=self.dw.env("a")).start()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()
