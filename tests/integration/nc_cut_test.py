"""Stock nc, one way, tens of MiB, under diskwire: every kind of cut lands
mid-stream and is left in place (or flaps); the stream must arrive byte-exact
within the bound. Without diskwire each of these transfers stalls
(tests/netns/harness_cuts_test.py shows it)."""

import re

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 8 * h.MiB  # bytes/s: a 4 s transfer.
CUT_AT = SIZE // 4


class NcCutTest(base.ShimTestCase):
    def run_with_cut(self, cut, **kwargs):
        xfer = self.nc(SIZE, RATE, **kwargs).start()
        xfer.wait_received(CUT_AT, 30)
        cut()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        return xfer

    def test_silent_link_down_on_sender_side(self):
        self.run_with_cut(lambda: self.net.cuts.link_down("a"))
        # The outage an operator sees counts from when the network stopped
        # carrying the stream, detection included (before: from the decision,
        # a few ms).
        with open(self.dw.log_path("b")) as f:
            m = re.search(r"first byte via storage (\d+) ms after the network "
                          r"stopped carrying it \((\d+) ms of them to detect",
                          f.read())
        self.assertIsNotNone(m, self.context())
        self.assertGreaterEqual(int(m.group(2)), base.DETECT_MS * 0.5,
                                self.context())
        self.assertGreaterEqual(int(m.group(1)), int(m.group(2)))

    def test_silent_link_down_on_receiver_side(self):
        self.run_with_cut(lambda: self.net.cuts.link_down("b"))

    def test_reset(self):
        self.run_with_cut(lambda: self.net.cuts.reset("b", "both"))

    def test_blackhole(self):
        self.run_with_cut(lambda: self.net.cuts.blackhole("b", "both"))

    def test_one_way_partition_of_the_data(self):
        self.run_with_cut(lambda: self.net.cuts.one_way(src="a"))

    def test_one_way_partition_of_the_acks(self):
        self.run_with_cut(lambda: self.net.cuts.one_way(src="b"))

    def test_flapping_link(self):
        flappers = []
        # Down longer than detection (failover), up long enough to resume.
        self.run_with_cut(lambda: flappers.append(
            self.net.cuts.start_flap(down_s=2, up_s=2, times=3, side="a")))
        self.assertTrue(flappers[0].join(60))

    def test_short_flaps_below_the_detection_bound(self):
        # Each outage is shorter than DETECT_MS: TCP may carry on, diskwire may
        # fail over; either way the bytes must be exact.
        flappers = []
        self.run_with_cut(lambda: flappers.append(
            self.net.cuts.start_flap(down_s=0.5, up_s=0.5, times=5, side="b")))
        self.assertTrue(flappers[0].join(60))


class NcCutFuseVolumeTest(base.ShimTestCase):
    """The volume as a network filesystem behaves: each host sees it through
    its own FUSE mount, with no change notifications for the other host's
    writes and sizes up to ~1 s stale."""

    volume = "fuse"

    def test_silent_link_down_over_a_fuse_volume(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(CUT_AT, 30)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()


class NcCutLunVolumeTest(base.ShimTestCase):
    """The volume as a SAN LUN: one image formatted by `diskwire format`,
    attached as a loop device per host, each with its own page cache (a
    buffered read through one misses what the other wrote); diskwire reads and
    writes it O_DIRECT."""

    volume = "lun"

    def test_silent_link_down_over_a_lun(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(CUT_AT, 30)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        self.assertGreaterEqual(self.log_lines("b", "via storage"), 1,
                                self.context())

    def test_one_way_partition_over_a_lun(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(CUT_AT, 30)
        self.net.cuts.one_way(src="b")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
