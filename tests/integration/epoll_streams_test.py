"""An epoll event loop with many concurrent connections, both directions busy,
under diskwire on both ends; the link is cut silently mid-stream and left cut.
Every connection must complete byte-exact in both directions."""

import dwharness as h
import shim_testbase as base

CONNS = 32
SIZE = 512 * 1024  # per connection and direction
RATE = 4 * h.MiB  # each process's total sending rate, bytes/s


class EpollStreamsTest(base.ShimTestCase):
    def test_many_connections_both_ways_survive_a_cut(self):
        procs = self.start_epoll_streams(CONNS, SIZE, RATE)
        total = CONNS * SIZE
        for role in ("server", "client"):
            h.wait_for(lambda: self.epoll_progress(role) >= total // 4, 60,
                       f"the {role} to receive a quarter of its bytes",
                       last=lambda: self.epoll_progress(role))
        self.net.cuts.link_down("b")
        bound = base.transfer_bound(total, RATE)
        for role in ("client", "server"):
            try:
                status = h.wait_exit(procs[role], bound)
            except h.WaitTimeout as e:
                self.fail(f"{e}: progress {self.epoll_progress(role)} of {total}\n"
                          f"{self.context()}")
            report = self.epoll_report(role)
            self.assertEqual(report.get("complete"), CONNS,
                             f"{role}: {report} {procs[role].describe()}\n{self.context()}")
            self.assertEqual(report["mismatched"], 0)
            self.assertEqual(report["errors"], [])
            self.assertEqual(status, 0)


if __name__ == "__main__":
    base.main()
