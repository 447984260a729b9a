"""A daemon that lives for months opens and closes connection after
connection (issue 9, "Lifecycle and hygiene that long-lived daemons need"):
with the preload, one process dialling 100,000 selected connections one after
another holds, once they ended, what it held after the first tenth of them —
memory, descriptors, inotify watches, threads — and its CPU per connection
does not grow; one whose connections all go over the volume
(DISKWIRE_MODE=storage: a channel pair, a watch, a reader each) too.
`short_conns.py churn` reports what the process holds at checkpoints, after
waiting out the engine's grace for ended sessions (5 s). DW_LONG_LIFE_CONNS
scales the direct run (default 100000)."""

import json
import os
import subprocess
import sys

import dwharness as h
import shim_testbase as base

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "short_conns.py")
CONNS = int(os.environ.get("DW_LONG_LIFE_CONNS", "100000"))
STORAGE_CONNS = 1500
IDLE_SESSIONS = 200
RSS_SLACK_KIB = 8 * 1024  # allocator noise, not a per-connection cost
SETTLE_S = 8  # the engine frees an ended session 5 s after it ended (and
# the late checkpoint waits up to as long again while more is held)


class LongLifeTest(base.ShimTestCase):
    def setUp(self):
        super().setUp()
        # 100,000 outgoing connections in a few minutes: the client closes
        # first, and its TIME_WAIT ports come back for the next ones.
        self.net.a.sysctl("net.ipv4.tcp_tw_reuse", "1")
        self.net.a.sysctl("net.ipv4.ip_local_port_range", "1024 65000")
        self.addr = f"{self.net.b.addr}:{base.PORT}"
        server = self.net.b.popen(
            "serve", [sys.executable, PROGRAM, "serve", self.addr],
            env=h.clean_env(self.dw.env("b")))
        self.addCleanup(server.kill)
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30, "the server",
                   last=server.describe)

    def churn(self, count, checkpoints, timeout, **overrides):
        proc = self.net.a.popen(
            "churn",
            [sys.executable, PROGRAM, "churn", self.addr, str(count),
             ",".join(str(c) for c in checkpoints), str(SETTLE_S)],
            env=h.clean_env(self.dw.env("a", **overrides)),
            stdout=subprocess.PIPE)
        out, _ = proc.popen.communicate(timeout=timeout)
        self.assertEqual(proc.popen.returncode, 0,
                         f"{proc.describe()}\n{self.context()}")
        marks = [json.loads(line) for line in out.decode().splitlines()
                 if line.startswith("{")]
        self.assertEqual([m["done"] for m in marks], list(checkpoints),
                         f"{out!r}\n{self.context()}")
        return marks

    def assert_flat(self, early, late, what):
        context = f"{what}: after {early['done']}: {early}\n" \
                  f"after {late['done']}: {late}\n{self.context()}"
        self.assertLessEqual(late["rss_kib"] - early["rss_kib"], RSS_SLACK_KIB,
                             "memory grows with connections\n" + context)
        self.assertLessEqual(late["fds"], early["fds"] + 2,
                             "descriptors leak\n" + context)
        self.assertLessEqual(late["inotify_watches"],
                             early["inotify_watches"] + 2,
                             "inotify watches leak\n" + context)
        self.assertLessEqual(late["threads"], early["threads"],
                             "threads grow\n" + context)

    def test_a_hundred_thousand_direct_connections_keep_flat_resources(self):
        first = max(CONNS // 10, 1)
        early, late = self.churn(CONNS, (first, CONNS), timeout=1500)
        self.assert_flat(early, late, f"{CONNS} direct connections")
        # The engine's cost per connection does not grow with the number of
        # connections it has seen: the late ones cost about what the first
        # ones did (a loose bound: these machines are noisy).
        per_early = early["cpu_s"] / early["done"]
        per_late = (late["cpu_s"] - early["cpu_s"]) / (late["done"] -
                                                        early["done"])
        self.assertLess(per_late, 3 * per_early + 1e-4,
                        f"CPU per connection {per_early * 1e6:.0f} us, then "
                        f"{per_late * 1e6:.0f} us\n{self.context()}")

    def test_connections_over_the_volume_keep_flat_resources(self):
        early, late = self.churn(STORAGE_CONNS, (300, STORAGE_CONNS),
                                 timeout=900, MODE="storage")
        self.assert_flat(early, late,
                         f"{STORAGE_CONNS} connections over the volume")

    def test_idle_sessions_over_the_volume_cost_nothing_per_wake(self):
        """200 quiet connections over the volume and one busy one: the
        engine wakes for every write of the busy one, and must not read the
        200 quiet channels and pairs each time (only when the watcher or the
        writer reports them changed, and in a sweep every 250 ms). Reading
        every one at every wake made 355,000 read syscalls a second here;
        the sweep and the busy session's own reads are a few thousand."""
        proc = self.net.a.popen(
            "idle-and-busy",
            [sys.executable, PROGRAM, "idle_and_busy", self.addr,
             str(IDLE_SESSIONS), "3"],
            env=h.clean_env(self.dw.env("a", MODE="storage")),
            stdout=subprocess.PIPE)
        out, _ = proc.popen.communicate(timeout=300)
        self.assertEqual(proc.popen.returncode, 0,
                         f"{proc.describe()}\n{self.context()}")
        reads = json.loads(out.decode().strip().splitlines()[-1])["reads_per_s"]
        print(f"{IDLE_SESSIONS} idle sessions and a busy one: {reads:.0f} "
              "read syscalls a second", file=sys.stderr)
        # The sweep: 4 a second per quiet session, a read of its channel
        # and one of its pair; the busy session's own reads come on top.
        self.assertLess(reads, 100 * IDLE_SESSIONS,
                        f"{reads:.0f} read syscalls a second\n{self.context()}")


if __name__ == "__main__":
    base.main()
