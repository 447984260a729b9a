"""Random damage to a live volume during storage-mode transfers (issue 13).

Stock nc streams a -> b with DISKWIRE_MODE=storage (every byte on the volume)
while a seeded damager hits the volume: byte flips and truncations of channel
segments, deleted segments, heartbeats and inbox messages, planted foreign
files and directories, hard links under segment names, and a full disk (the
volume is a 64 MiB tmpfs; a ballast file takes all its free space for a
while). Whatever the damage, what b delivers is an exact prefix of what a
sent, and a transfer that cannot finish ends (both nc exit) within a bound,
with the reason in a diskwire log.

DW_DAMAGE_SEEDS=N runs seeds 0..N-1 (default 3 in CI).
"""

import os
import random
import subprocess
import sys
import time
import unittest

import dwharness as h
import shim_testbase as base

SIZE = 4 * h.MiB
RATE = 2 * h.MiB
SEEDS = int(os.environ.get("DW_DAMAGE_SEEDS", "3"))


def files_under(root, sub, suffix=""):
    out = []
    for dirpath, _, names in os.walk(os.path.join(root, sub)):
        out += [os.path.join(dirpath, n) for n in names if n.endswith(suffix)]
    return sorted(out)


def fill(root):
    """Takes all the free space of the file system under `root` with a ballast
    file; returns its path."""
    path = os.path.join(root, "ballast")
    stat = os.statvfs(root)
    with open(path, "wb") as f:
        try:
            f.write(b"\0" * (stat.f_bavail * stat.f_frsize))
        except OSError:
            pass  # ENOSPC: full, as meant
    return path


def damage_once(rng, root):
    """One random act of damage on the volume at `root`; returns what it did
    (or None when there was nothing to damage yet)."""
    segments = files_under(root, "channels", ".seg")
    kind = rng.choice(["flip", "flip", "truncate", "delete-segment",
                       "delete-heartbeat", "delete-inbox", "plant", "link",
                       "fill"])
    if kind == "fill":
        if os.path.exists(os.path.join(root, "ballast")):
            return None
        return f"filled the volume with {fill(root)}"
    if kind in ("flip", "truncate", "delete-segment", "link") and not segments:
        return None
    if kind == "flip":
        path = rng.choice(segments)
        size = os.path.getsize(path)
        if size == 0:
            return None
        at = rng.randrange(size)
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(bytes([rng.randrange(256)]))
        return f"flipped byte {at} of {path}"
    if kind == "truncate":
        path = rng.choice(segments)
        size = rng.randrange(max(1, os.path.getsize(path)))
        os.truncate(path, size)
        return f"truncated {path} to {size}"
    if kind == "delete-segment":
        path = rng.choice(segments)
        os.unlink(path)
        return f"deleted {path}"
    if kind in ("delete-heartbeat", "delete-inbox"):
        files = files_under(root, "heartbeats" if kind == "delete-heartbeat"
                            else "inbox")
        if not files:
            return None
        path = rng.choice(files)
        os.unlink(path)
        return f"deleted {path}"
    if kind == "plant":
        where = rng.choice(["channels", "heartbeats", "inbox"])
        target = os.path.join(root, where)
        dirs = [d for d in (os.path.join(target, n) for n in os.listdir(target))
                if os.path.isdir(d)] if os.path.isdir(target) else []
        if dirs and rng.random() < 0.5:
            target = rng.choice(dirs)
        name = rng.choice(["junk", "0000000000000007.seg", "x.hb", ".hidden",
                           "ZZZ"])
        path = os.path.join(target, name)
        try:
            with open(path, "wb") as f:
                f.write(os.urandom(rng.randrange(1, 300)))
        except OSError:
            return None
        return f"planted {path}"
    # link: a segment under the next segment's name
    path = rng.choice(segments)
    base_name = os.path.basename(path)
    index = int(base_name.split(".")[0]) + rng.randrange(1, 3)
    link = os.path.join(os.path.dirname(path), f"{index:016d}.seg")
    try:
        os.link(path, link)
    except OSError:
        return None
    return f"linked {path} as {link}"


class VolumeDamageTest(base.ShimTestCase):
    settings = {"MODE": "storage"}

    def setUp(self):
        super().setUp()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "dwdamage",
                        self.net.volume], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.net.volume])

    def run_seed(self, seed):
        rng = random.Random(seed)
        root = self.net.volume_of("a")
        ballast = os.path.join(root, "ballast")
        xfer = self.nc(SIZE, RATE).start()
        done = []
        start = time.monotonic()
        while time.monotonic() - start < 1.8:
            time.sleep(rng.uniform(0.05, 0.3))
            if os.path.exists(ballast) and rng.random() < 0.5:
                os.unlink(ballast)
                done.append("removed the ballast")
            what = damage_once(rng, root)
            if what:
                done.append(what)
        if os.path.exists(ballast):
            os.unlink(ballast)
            done.append("removed the ballast")
        bound = SIZE / RATE + base.PEER_TIMEOUT_MS / 1000 * 2 + base.SLACK_S
        context = lambda: (f"seed {seed}; damage: {done}\n" + xfer.describe() +
                           "\n" + self.context())
        try:
            xfer.wait_done(bound)
        except h.WaitTimeout as e:
            self.fail(f"a stall was not ended within {bound:.0f} s: {e}\n"
                      + context())
        with open(xfer.source, "rb") as f:
            sent = f.read()
        with open(xfer.output, "rb") as f:
            got = f.read()
        self.assertEqual(got, sent[:len(got)],
                         "delivered bytes are not a prefix of the sent ones\n"
                         + context())
        if len(got) < len(sent):
            logs = self.dw.logs(limit=20000)
            self.assertTrue(" ends: " in logs or "WARN" in logs or
                            "ERROR" in logs,
                            "a transfer stopped short with no reason logged\n"
                            + context())
        kinds = sorted({what.split()[0] for what in done})
        print(f"\nseed {seed}: {len(done)} acts of damage ({', '.join(kinds)}), "
              f"delivered {len(got)} of {len(sent)} bytes", file=sys.stderr)
        return len(got) == len(sent)

    def test_a_full_disk_only_delays(self):
        """Full for a while, three times: backpressure, not damage, so the
        whole stream arrives."""
        xfer = self.nc(SIZE, RATE).start()
        root = self.net.volume_of("a")
        for _ in range(3):
            time.sleep(0.3)
            ballast = fill(root)
            time.sleep(0.6)
            os.unlink(ballast)
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))


for _seed in range(SEEDS):
    def _test(self, seed=_seed):
        self.run_seed(seed)
    setattr(VolumeDamageTest, f"test_damage_seed_{_seed}", _test)


if __name__ == "__main__":
    unittest.main(verbosity=2)
