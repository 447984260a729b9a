"""Stock redis-cli sends INCR to a stock redis-server on one connection, every
10 ms, both under diskwire; the link is cut silently in the middle and healed
later. Every command is answered exactly once and in order (the replies count
1, 2, 3, ... without a gap or a repeat), through the cut and back on the
network after the heal, and the server's counter is the number sent."""

import shutil

import dwharness as h
import shim_testbase as base

COMMANDS = 1500
INTERVAL_S = 0.01


class RedisTest(base.ShimTestCase):
    def setUp(self):
        if not (shutil.which("redis-server") and shutil.which("redis-cli")):
            self.skipTest("redis-server and redis-cli are not installed "
                          "(scripts/setup installs them)")
        super().setUp()

    def replies(self, path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip()]

    def test_incr_on_one_connection_through_a_cut_and_a_heal(self):
        self.net.b.popen(
            "redis-server",
            ["redis-server", "--port", str(base.PORT), "--bind", "0.0.0.0",
             "--protected-mode", "no", "--save", "", "--appendonly", "no"],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30,
                   "redis-server listening")
        out_path = self.net.path("incr.out")
        with open(out_path, "w") as out:
            cli = self.net.a.popen(
                "redis-cli",
                ["redis-cli", "-h", self.net.b.addr, "-p", str(base.PORT),
                 "-r", str(COMMANDS), "-i", str(INTERVAL_S), "INCR", "counter"],
                env=h.clean_env(self.dw.env("a")), stdout=out)
        h.wait_for(lambda: len(self.replies(out_path)) >= COMMANDS // 5, 30,
                   "the first replies")
        self.net.cuts.link_down("a")
        h.wait_for(lambda: self.log_lines("a", "failing over to storage") >= 1
                   and self.log_lines("b", "failing over to storage") >= 1,
                   20, "the failover on both hosts", last=self.dw.logs)
        answered = len(self.replies(out_path))
        h.wait_for(lambda: len(self.replies(out_path)) >= answered + 100, 30,
                   "replies over the volume while the link is down",
                   last=self.dw.logs)
        self.net.cuts.link_up("a")
        h.wait_for(lambda: self.log_lines("a", "back on the network") >= 1
                   and self.log_lines("b", "back on the network") >= 1,
                   20, "the resume on both hosts", last=self.dw.logs)
        self.assertEqual(cli.wait(timeout=120), 0, "redis-cli failed")
        got = self.replies(out_path)
        self.assertEqual(got, [str(i) for i in range(1, COMMANDS + 1)],
                         "the replies skip, repeat or reorder a command")
        final = self.net.b.run(["redis-cli", "-p", str(base.PORT), "GET",
                                "counter"]).stdout.strip()
        self.assertEqual(final, str(COMMANDS))


if __name__ == "__main__":
    base.main()
