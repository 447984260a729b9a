"""The cut at the edges of a stream: before its first byte (the connection is
up, nothing sent yet) and after the sender's FIN (everything handed to the
kernel and the FIN queued, much of it not yet acknowledged)."""

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


if __name__ == "__main__":
    base.main()
