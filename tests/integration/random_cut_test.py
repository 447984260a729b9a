"""Cuts at random moments of an nc transfer under diskwire, of random kinds.

Each round draws the moment (a fraction of the stream received), the kind
(link down on either side, blackhole, reset, one-way partition either way)
and whether the cut comes back (a flap); the seed is printed, and DW_SEED
replays a run. Every round must deliver the stream byte-exact in time.
"""

import os
import random

import dwharness as h
import shim_testbase as base
from dwharness.shim import Diskwire

ROUNDS = 4
SIZE = 8 * h.MiB
RATE = 4 * h.MiB

KINDS = {
    "link down a": lambda c: c.link_down("a"),
    "link down b": lambda c: c.link_down("b"),
    "blackhole": lambda c: c.blackhole("b", "both"),
    "reset": lambda c: c.reset("b", "both"),
    "one-way a->b": lambda c: c.one_way(src="a"),
    "one-way b->a": lambda c: c.one_way(src="b"),
}


class RandomCutTest(base.ShimTestCase):
    def test_random_cut_moments(self):
        seed = int(os.environ.get("DW_SEED", random.randrange(1 << 30)))
        print(f"DW_SEED={seed}", flush=True)
        rng = random.Random(seed)
        for round_ in range(ROUNDS):
            at = rng.uniform(0.02, 0.95)
            kind = rng.choice(sorted(KINDS))
            heal_after = rng.choice([None, 1.5, 3.0])
            with self.subTest(round=round_, at=round(at, 2), kind=kind, heal=heal_after):
                self.one_round(at, kind, heal_after)

    def one_round(self, at, kind, heal_after):
        self.net.close()
        self.net = h.TwoHosts()
        self.dw = Diskwire(self.net, base.PORT, **self.dw.settings_without_select())
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(int(at * SIZE), 30)
        KINDS[kind](self.net.cuts)
        if heal_after:
            h.still_running_after(xfer.procs["recv"], heal_after)  # Let it run cut.
            self.net.cuts.restore()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()
