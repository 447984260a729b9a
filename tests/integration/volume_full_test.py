"""A full volume is a reported condition, never a silent stall or a loss
(issue 13, case 5): a storage-mode nc stream with a slow reader fills the
sender's 3 MiB tmpfs send volume (the receiver writes its acknowledgements to
a volume of its own: send and receive volumes, as with replicated storage);
the sender's diskwire says so in its log and in `diskwire status`, the
application's writes wait, and every byte arrives as the acknowledged
segments free space."""

import os
import subprocess

import dwharness as h
from dwharness.shim import cli_path
import shim_testbase as base

SIZE = 3 * h.MiB
READ_RATE = 512 * 1024  # bytes/s at the receiving end


class VolumeFullTest(base.ShimTestCase):
    settings = {"MODE": "storage", "REPLAY_CAP": "4M"}

    def setUp(self):
        super().setUp()
        self.small = self.net.path("small")  # a's send volume, b's receive volume
        self.roomy = self.net.volume
        os.mkdir(self.small)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "dwfull", self.small],
                       check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.small])
        self.dw.env = self.split_env

    def split_env(self, node):
        env = type(self.dw).env(self.dw, node)
        del env["DISKWIRE_VOLUME"]
        mine, theirs = (self.small, self.roomy) if node == "a" else (self.roomy, self.small)
        env["DISKWIRE_SEND_VOLUME"], env["DISKWIRE_RECV_VOLUME"] = mine, theirs
        return env

    def status(self):
        run = subprocess.run([cli_path(), "status", "--volume", self.small],
                             capture_output=True, text=True, timeout=30)
        return run.stdout + run.stderr

    def test_a_full_volume_is_reported_and_nothing_is_lost(self):
        xfer = self.nc(SIZE, 64 * h.MiB, slow_reader_rate=READ_RATE).start()
        h.wait_for(lambda: "the volume is full" in self.dw.logs(limit=100000), 30,
                   "the sender to report the full volume", last=self.context)
        h.wait_for(lambda: "the volume is full" in self.status(), 30,
                   "diskwire status to show it", last=self.status)
        self.assert_byte_exact(xfer, SIZE / READ_RATE + base.SLACK_S)
        self.assertIn("writes to the volume go through again",
                      self.dw.logs(limit=100000))


if __name__ == "__main__":
    base.main()
