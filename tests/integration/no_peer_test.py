"""A peer without diskwire gets plain TCP (issue 12, defect 3): stock nc
under diskwire talks to a stock nc without it, a slow stream, and the link is
cut for 15 s, longer than the kernel user timeout diskwire sets on selected
sockets (3 x DETECT_MS). Plain TCP survives that; so must the connection, once
diskwire knows that no peer of its holds it — and it says so once."""

import time

import dwharness as h
import shim_testbase as base

SIZE = 1024 * 1024
RATE = 64 * 1024  # bytes/s, in 64 KiB writes: a 16 s stream
CUT_S = 15


class NoPeerTest(base.ShimTestCase):
    def test_long_cut_with_a_plain_tcp_peer(self):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, port=base.PORT,
                            env_sender=self.dw.env("a"), env_receiver={}).start()
        xfer.wait_received(128 * 1024, 30)
        self.net.cuts.link_down("a")
        time.sleep(CUT_S)  # the outage itself: nothing to wait for
        self.net.cuts.link_up("a")
        # After the heal TCP's backed-off retransmission timer takes its time.
        self.assert_byte_exact(xfer, SIZE / RATE + CUT_S + base.SLACK_S)
        log = self.dw.logs(limit=100000)
        self.assertEqual(log.count("plain TCP now"), 1, log)


if __name__ == "__main__":
    base.main()
