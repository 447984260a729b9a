"""One hung append holds only its own connection (issue 12, 6f).

Host a sees the volume through stall_fs.py, a pass-through FUSE filesystem
that stalls the writes of the first channel created through it for STALL_S
seconds, as a network filesystem that hangs on one file does. One epoll
program on each host carries CONNS connections over the volume
(DISKWIRE_MODE=storage). While the first connection's channel is stalled,
the others must arrive whole at b, and a's diskwire must say that an append
hangs; once the stall is over, every connection completes byte-exact.
"""

import os
import sys
import time

import dwharness as h
import shim_testbase as base

CONNS = 4
SIZE = 256 * 1024  # per connection and direction
RATE = 2 * h.MiB
STALL_S = 25


class StalledVolumeTest(base.ShimTestCase):
    settings = {"MODE": "storage"}

    def setUp(self):
        try:
            import fusepy  # noqa: F401
        except ImportError:
            self.skipTest("SKIPPED: python3-fusepy is not installed (apt-get install "
                          "python3-fusepy)")
        super().setUp()
        self.view = self.net.path("volume-a")
        os.mkdir(self.view)
        self.stall_log = self.net.path("stall.log")
        fs = h.Proc("stall_fs", ["/usr/bin/python3", os.path.join(base.HERE, "stall_fs.py"),
                                 self.net.volume, self.view, "--stall-s", str(STALL_S),
                                 "--log", self.stall_log], log_dir=self.net.workdir)
        self.addCleanup(h.hosts._unmount, self.view)
        h.wait_for(lambda: os.path.ismount(self.view), 20, "stall_fs to mount",
                   last=fs.describe)
        self.dw.env = self.split_env

    def split_env(self, node, **overrides):
        env = type(self.dw).env(self.dw, node, **overrides)
        if node == "a":
            env["DISKWIRE_VOLUME"] = self.view
        return env

    def test_other_connections_move_while_one_append_hangs(self):
        started = time.monotonic()
        procs = self.start_epoll_streams(CONNS, SIZE, RATE)
        others = (CONNS - 1) * SIZE
        h.wait_for(lambda: self.epoll_progress("server") >= others,
                   STALL_S - 8, "b to receive the connections that are not stalled",
                   last=lambda: f"{self.epoll_progress('server')} of {others}; "
                                f"{self.stall_state()}\n{self.context()}")
        with open(self.stall_log) as f:
            self.assertIn("stalling writes", f.read())
        self.assertLess(time.monotonic() - started, STALL_S,
                        "the stall ended before the others arrived: nothing was shown")
        h.wait_for(lambda: self.log_lines("a", "has not returned for") > 0, STALL_S,
                   "a's diskwire to report the hung append", last=self.context)

        bound = STALL_S + base.transfer_bound(CONNS * SIZE, RATE)
        for role in ("client", "server"):
            try:
                status = h.wait_exit(procs[role], bound)
            except h.WaitTimeout as e:
                self.fail(f"{e}\n{self.context()}")
            report = self.epoll_report(role)
            self.assertEqual(report.get("complete"), CONNS, f"{role}: {report}\n"
                             f"{self.context()}")
            self.assertEqual(report["mismatched"], 0)
            self.assertEqual(status, 0)
        print(f"\nall {CONNS} connections complete after "
              f"{time.monotonic() - started:.1f} s (stall {STALL_S} s)", file=sys.stderr)

    def stall_state(self):
        return open(self.stall_log).read() if os.path.exists(self.stall_log) else "(no stall)"


if __name__ == "__main__":
    base.main()
