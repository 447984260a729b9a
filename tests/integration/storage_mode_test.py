"""DISKWIRE_MODE=storage: the same nc transfer with every byte over the volume.
The veth link carries at most a small fraction of the stream (connection
setup, ACK-free control traffic), and a cut makes no difference."""

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 8 * h.MiB


class StorageModeTest(base.ShimTestCase):
    settings = {"MODE": "storage"}

    def test_every_byte_goes_over_the_volume(self):
        before = self.net.b.link_counters()["rx_bytes"]
        xfer = self.nc(SIZE, RATE).start()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        over_network = self.net.b.link_counters()["rx_bytes"] - before
        self.assertLess(over_network, SIZE // 100,
                        f"{over_network} bytes crossed the link\n{self.context()}")

    def test_a_cut_changes_nothing(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(SIZE // 4, 30)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()
