"""Stock redis-cli sends INCR to a stock redis-server on one connection, every
10 ms, both under diskwire; the link is cut silently in the middle and healed
later. Every command is answered exactly once and in order (the replies count
1, 2, 3, ... without a gap or a repeat), through the cut and back on the
network after the heal, and the server's counter is the number sent.

And a replication link: a stock replica follows its master through a cut
longer than redis's own replication timeout, without dropping the link (no
partial resynchronisation), and is exact after the heal."""

import os
import shutil
import time

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
             "--protected-mode", "no", "--save", "", "--appendonly", "no",
             "--dir", self.net.path(".")],
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

    def test_replica_follows_its_master_through_a_cut_longer_than_its_timeout(self):
        """Without diskwire the replica drops the link after repl-timeout (5 s)
        and shows a stale counter until it reconnects with a partial
        resynchronisation; with it, the replication stream and the replica's
        acknowledgements cross the volume and the link never drops."""
        port = str(base.PORT)
        common = ["--port", port, "--bind", "0.0.0.0", "--protected-mode", "no",
                  "--save", "", "--appendonly", "no", "--repl-timeout", "5",
                  "--repl-ping-replica-period", "1"]
        for node in "ab":  # each its own: a replica saves what it loads
            os.mkdir(self.net.path(f"redis-{node}"))
        self.net.b.popen("master", ["redis-server", *common, "--dir", self.net.path("redis-b")],
                         env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30, "the master listening")
        self.net.a.popen("replica",
                         ["redis-server", *common, "--dir", self.net.path("redis-a"),
                          "--replicaof", self.net.b.addr, port],
                         env=h.clean_env(self.dw.env("a")))

        def info(host, section):
            out = host.run(["redis-cli", "-p", port, "INFO", section],
                           check=False).stdout
            return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)

        def counter(host):
            return int(host.run(["redis-cli", "-p", port, "GET", "counter"],
                                check=False).stdout.strip() or 0)

        h.wait_for(lambda: info(self.net.a, "replication").get("master_link_status")
                   == "up", 30, "the replica's link to its master", last=self.dw.logs)
        writes = 2500
        writer = self.net.b.popen(  # a local client, not through the link
            "writer", ["redis-cli", "-p", port, "-r", str(writes), "-i", "0.01",
                       "INCR", "counter"], env=h.clean_env({}))
        h.wait_for(lambda: counter(self.net.a) >= 100, 30, "the first writes replicated")
        self.net.cuts.link_down("a")
        at_cut = counter(self.net.a)
        time.sleep(10)  # twice repl-timeout: a window, not synchronisation
        during = counter(self.net.a)
        self.assertEqual(info(self.net.a, "replication").get("master_link_status"),
                         "up", self.context())
        self.assertGreater(during, at_cut + 500,
                           "the replica stopped following its master\n" + self.context())
        self.net.cuts.link_up("a")
        self.assertEqual(writer.wait(timeout=120), 0, "redis-cli failed")
        h.wait_for(lambda: counter(self.net.a) == writes, 30,
                   "the replica to catch up", last=self.dw.logs)
        stats = info(self.net.b, "stats")
        self.assertEqual((stats.get("sync_partial_ok"), stats.get("sync_partial_err")),
                         ("0", "0"), "the replica reconnected\n" + self.context())


if __name__ == "__main__":
    base.main()
