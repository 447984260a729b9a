"""Replicated volumes through `diskwire mirror` (claims 5, 6, 8, 10, 12, 16).

Each host writes to its own send volume and reads its own receive volume;
the four are separate ext4 filesystems (loop-mounted images), as two arrays
would be. One `diskwire mirror` per direction (run outside the hosts' network
namespaces, like the storage's own replication) copies a's send volume to
b's receive volume and back. A stock nc transfer must survive a silent link
cut byte-exact, and again when a mirror is SIGKILLed and restarted while the
stream flows over storage.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

import dwharness as h
from dwharness import cleanup
from dwharness.procs import Proc, clean_env
from dwharness.shim import cli_path
import shim_testbase as base

SIZE = 16 * h.MiB
RATE = 2 * h.MiB  # bytes/s: an 8 s transfer
CUT_AT = SIZE // 4
IMAGE_BYTES = 256 * h.MiB
LUN_BYTES = 1024 * h.MiB  # sparse


def _run(argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


class MirrorTest(base.ShimTestCase):
    def setUp(self):
        for tool in ("mkfs.ext4", "losetup", "mount", "umount"):
            if not shutil.which(tool):
                self.skipTest(f"SKIPPED: {tool} is not installed")
        super().setUp()
        self.arrays = tempfile.mkdtemp(prefix="dw-mirror-",
                                       dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(shutil.rmtree, self.arrays, True)
        # a-send, b-recv, b-send, a-recv: four filesystems.
        self.vols = {name: self.mount_image(name)
                     for name in ("a-send", "a-recv", "b-send", "b-recv")}
        self.mirrors = {}
        self.start_mirror("ab", "a-send", "b-recv")
        self.start_mirror("ba", "b-send", "a-recv")

    def mount_image(self, name):
        image = os.path.join(self.arrays, name + ".img")
        mountpoint = os.path.join(self.arrays, name)
        os.mkdir(mountpoint)
        with open(image, "wb") as f:
            f.truncate(IMAGE_BYTES)
        _run(["mkfs.ext4", "-q", image])
        _run(["mount", "-o", "loop", image, mountpoint])

        def unmount():
            subprocess.run(["umount", "-l", mountpoint], check=False,
                           stderr=subprocess.DEVNULL)
        token = cleanup.register(f"loop mount {mountpoint}", unmount)
        self.addCleanup(cleanup.run, token)
        volume = os.path.join(mountpoint, "volume")
        os.mkdir(volume)
        return volume

    def start_mirror(self, name, src, dst):
        """`diskwire mirror` from volume `src` to `dst`, named `name`."""
        proc = Proc(f"mirror-{name}",
                    [cli_path(), "mirror", "--from", self.vols[src], "--to",
                     self.vols[dst], "--name", name, "--max-lag-ms", "500"],
                    env=clean_env(), log_dir=self.net.workdir)
        self.addCleanup(proc.kill)
        self.mirrors[name] = proc
        return proc

    def env(self, node):
        """The preload with this host's send and receive volumes."""
        env = self.dw.env(node, SEND_VOLUME=self.vols[f"{node}-send"],
                          RECV_VOLUME=self.vols[f"{node}-recv"])
        del env["DISKWIRE_VOLUME"]
        return env

    def transfer(self):
        return h.NcTransfer(self.net, size=SIZE, rate=RATE, port=base.PORT,
                            env_sender=self.env("a"),
                            env_receiver=self.env("b")).start()

    def context(self, xfer=None):
        parts = [super().context(xfer)]
        parts += [p.describe() for p in self.mirrors.values()]
        for name in ("ab", "ba"):
            dst = self.vols["b-recv" if name == "ab" else "a-recv"]
            path = os.path.join(dst, "mirror", f"{name}.status")
            if os.path.exists(path):
                with open(path) as f:
                    parts.append(f"--- {path} ---\n{f.read()[:1500]}")
        return "\n".join(parts)

    def assert_all_received_exact(self, xfer):
        """Every byte reached b, in order (checked before the processes'
        exits, so that a failure names which part is missing)."""
        try:
            xfer.wait_received(SIZE, base.transfer_bound(SIZE, RATE))
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context(xfer)}")
        self.assertEqual(xfer.sha_received(), xfer.sha_sent, self.context(xfer))

    def assert_mirrors_running(self):
        for name, proc in self.mirrors.items():
            self.assertIsNone(proc.poll(), f"mirror {name} exited\n{self.context()}")

    def test_silent_link_cut_over_mirrored_volumes(self):
        xfer = self.transfer()
        xfer.wait_received(CUT_AT, 30)
        self.net.cuts.link_down("a")
        self.assert_all_received_exact(xfer)
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        self.assert_mirrors_running()
        self.assert_mirror_copied("ab", "b-recv", xfer)

    def assert_mirror_copied(self, name, dst, xfer):
        """Records went through mirror `name`, and it measured their lag:
        its status file on `dst` (rewritten every second) says so."""
        status = os.path.join(self.vols[dst], "mirror", f"{name}.status")

        def copied_records():
            try:
                with open(status) as f:
                    text = f.read()
            except FileNotFoundError:
                return ""
            return text if re.search(r"\nrecords [1-9]", text) else ""
        try:
            text = h.wait_for(copied_records, 5, "records in the mirror's status")
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context(xfer)}")
        self.assertRegex(text, r"\nchannel s-[0-9a-f]{32}-c2s-i[0-9a-f]{16} lag_ms p50 ", text)

    def test_mirror_killed_and_restarted_in_the_storage_phase(self):
        xfer = self.transfer()
        xfer.wait_received(CUT_AT, 30)
        self.net.cuts.link_down("a")
        # The storage phase: bytes arrive while the link is down.
        try:
            xfer.wait_received(CUT_AT + 2 * h.MiB, 40)
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context(xfer)}")
        killed = self.mirrors["ab"]
        killed.signal(signal.SIGKILL)
        killed.wait(10)
        at_kill = xfer.received()
        # Nothing new reaches b while its only path is stopped (after what
        # was already on b's receive volume has drained)...
        self.assertTrue(h.still_running_after(xfer.procs["recv"], 1.0),
                        f"received {at_kill} at the kill\n{self.context(xfer)}")
        stalled_at = xfer.received()
        self.assertTrue(h.still_running_after(xfer.procs["recv"], 1.5),
                        self.context(xfer))
        self.assertEqual(xfer.received(), stalled_at, self.context(xfer))
        self.assertLess(stalled_at, SIZE, self.context(xfer))
        # ...and everything does once a new mirror resumes where it stopped.
        self.start_mirror("ab", "a-send", "b-recv")
        self.assert_all_received_exact(xfer)
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        self.assert_mirrors_running()


class MirrorLunTest(MirrorTest):
    """The same over four LUNs (sparse image files laid out by `diskwire
    format`, every access O_DIRECT), as a SAN's replication carries a send LUN
    to the peer's receive LUN: no filesystem anywhere."""

    def mount_image(self, name):
        image = os.path.join(self.arrays, name + ".img")
        with open(image, "wb") as f:
            f.truncate(LUN_BYTES)
        _run([cli_path(), "format", image])
        return image

    def context(self, xfer=None):
        parts = [base.ShimTestCase.context(self, xfer)]
        parts += [p.describe() for p in self.mirrors.values()]
        for vol in ("a-recv", "b-recv"):
            parts.append(f"--- diskwire status {vol} ---\n"
                         f"{self.status_json(vol)[:3000]}")
        return "\n".join(parts)

    def status_json(self, vol):
        r = subprocess.run([cli_path(), "status", "--volume", self.vols[vol],
                            "--json"], capture_output=True, text=True,
                           env=clean_env(), timeout=30)
        return r.stdout + r.stderr

    def assert_mirror_copied(self, name, dst, xfer):
        """A LUN has no files: the mirror's status is a channel of the
        target, which `diskwire status` reads."""
        def copied():
            try:
                status = json.loads(self.status_json(dst))
            except ValueError:
                return None
            for m in status["mirrors"]:
                if m["name"] == name and m["records"] > 0 and m["samples"] > 0:
                    return m
            return None
        try:
            m = h.wait_for(copied, 5, f"records in mirror {name}'s status")
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context(xfer)}")
        self.assertGreaterEqual(m["channels"], 1, m)
        self.assertEqual(m["channels_in_error"], 0, m)


if __name__ == "__main__":
    base.main()
