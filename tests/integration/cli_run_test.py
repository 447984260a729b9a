"""The same nc transfer across a silent cut, each nc started by the diskwire
command (`diskwire run --volume V --select S ... -- nc ...`) instead of a
hand-set LD_PRELOAD."""

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 8 * h.MiB


class CliRunTest(base.ShimTestCase):
    def test_nc_under_diskwire_run_survives_a_silent_cut(self):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, port=base.PORT,
                            wrap_sender=self.dw.run_argv("a"),
                            wrap_receiver=self.dw.run_argv("b")).start()
        xfer.wait_received(SIZE // 4, 30)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()
