"""A long-lived cluster keeps a bounded volume (issue 12, defect 4): 1,000
short connections (some of them over the volume), a few client processes
killed while connected; afterwards what no live process needs is reclaimed —
channels by their owners, the dead processes' heartbeats and inboxes by
`diskwire prune` — and the volume's file count is back to its baseline."""

import os
import subprocess
import sys
import time

import dwharness as h
from dwharness.shim import cli_path
import shim_testbase as base

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "short_conns.py")


def volume_files(root):
    count, size = 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        count += len(filenames) + len(dirnames)
        for name in filenames:
            try:
                size += os.path.getsize(os.path.join(dirpath, name))
            except FileNotFoundError:
                pass
    return count, size


class BoundedVolumeTest(base.ShimTestCase):
    def run_clients(self, count, **overrides):
        proc = self.net.a.popen(
            "dial", [sys.executable, PROGRAM, "dial", self.addr, str(count)],
            env=h.clean_env(self.dw.env("a", **overrides)))
        self.assertEqual(h.wait_exit(proc, 240), 0,
                         f"{proc.describe()}\n{self.context()}")

    def test_volume_returns_to_its_baseline(self):
        self.addr = f"{self.net.b.addr}:{base.PORT}"
        server = self.net.b.popen(
            "serve", [sys.executable, PROGRAM, "serve", self.addr],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30, "the server",
                   last=server.describe)
        self.run_clients(1)  # the server's engine is up: the baseline
        time.sleep(1)
        baseline = volume_files(self.net.volume)

        self.run_clients(950)
        self.run_clients(50, MODE="storage")  # these go over the volume
        held = []
        for _ in range(3):
            p = self.net.a.popen(
                "hold", [sys.executable, PROGRAM, "hold", self.addr],
                env=h.clean_env(self.dw.env("a", MODE="storage")),
                stdout=subprocess.PIPE)
            self.assertEqual(p.popen.stdout.readline().strip(), b"connected")
            held.append(p)
        for p in held:
            p.kill()  # SIGKILL: their heartbeats, inboxes and channels stay
        grown = volume_files(self.net.volume)
        self.assertGreater(grown[0], baseline[0], "the test made no mess")

        # Owners remove their channels once both ends let go (a 5 s grace);
        # the server notices the killed clients after the peer timeout.
        time.sleep(base.PEER_TIMEOUT_MS / 1000 + 8)
        prunes = []

        def pruned_to_baseline():
            prunes.append(subprocess.run(
                [cli_path(), "prune", "--volume", self.net.volume,
                 "--stale-after-ms", "2000"], capture_output=True, text=True,
                timeout=60))
            now = volume_files(self.net.volume)
            return now if now[0] <= baseline[0] else None

        after = h.wait_for(
            pruned_to_baseline, 40, "the volume back to its baseline", interval=1,
            last=lambda: f"{volume_files(self.net.volume)} vs {baseline}: "
                         f"{prunes[-1].stdout}{prunes[-1].stderr}\n{self.dw.logs()}")
        printed = "".join(p.stdout for p in prunes)
        self.assertLessEqual(after[0], baseline[0], printed)
        self.assertIn("removed heartbeat a.", printed)
        self.assertIsNone(server.poll(), "the server lives on")


if __name__ == "__main__":
    base.main()
