"""Shared fixture of the integration tests that run stock programs under the
diskwire shim between two namespaces (tests/netns/dwharness).

Every test asserts byte-exact delivery (sha256) and completion within a bound.
Timing settings are tightened so a test takes seconds: detection 1 s, peer
timeout 4 s, heartbeat 200 ms.
"""

import json
import os
import shutil
import subprocess
import sys
import unittest

import dwharness as h
from dwharness.peers import PeerStream
from dwharness.shim import Diskwire, cli_path

HERE = os.path.dirname(os.path.abspath(__file__))
DETECT_MS = 1000
PEER_TIMEOUT_MS = 4000
HEARTBEAT_MS = 200
PORT = 5001
SLACK_S = 40  # Added to every bound: the machine is small and loaded.


def transfer_bound(size, rate):
    """Seconds a paced transfer of `size` bytes may take, failover included."""
    return size / rate + DETECT_MS / 1000 + SLACK_S


class ShimTestCase(unittest.TestCase):
    """Two hosts, a volume, and diskwire settings for port PORT."""

    select = PORT
    settings = {}
    # or "fuse": each host sees the volume through bindfs; or "lun": one
    # formatted image as two loop devices, a page cache each
    volume = "shared"
    # Where the hosts' work directory goes: None for the test's temporary
    # directory.
    workdir_parent = None

    def setUp(self):
        # DW_TEST_VOLUME=lun (or fuse) runs a suite written for a shared
        # directory on that kind of volume instead.
        if self.volume == "shared":
            self.volume = os.environ.get("DW_TEST_VOLUME", "shared")
        if self.volume == "fuse" and not shutil.which("bindfs"):
            self.skipTest("SKIPPED: bindfs is not installed (apt-get install bindfs)")
        if self.volume == "lun" and h.lun_available():
            self.skipTest(f"SKIPPED: {h.lun_available()}")
        self.net = h.TwoHosts(volume=self.volume, parent=self.workdir_parent)
        self.addCleanup(self.net.close)
        settings = dict(DETECT_MS=DETECT_MS, PEER_TIMEOUT_MS=PEER_TIMEOUT_MS,
                        HEARTBEAT_MS=HEARTBEAT_MS)
        settings.update(self.settings)
        self.dw = Diskwire(self.net, self.select, **settings)

    def nc(self, size, rate, **kwargs):
        """An nc transfer a -> b with diskwire on both ends (not started)."""
        kwargs.setdefault("port", PORT)
        return h.NcTransfer(self.net, size=size, rate=rate,
                            env_sender=self.dw.env("a"),
                            env_receiver=self.dw.env("b"), **kwargs)

    def peers(self, size, rate, **kwargs):
        """A stream_peer.py stream a -> b with diskwire on both ends."""
        kwargs.setdefault("port", PORT)
        return PeerStream(self.net, size=size, rate=rate, env_sender=self.dw.env("a"),
                          env_receiver=self.dw.env("b"), **kwargs)

    def start_http_server(self, size):
        """Stock `python3 -m http.server` on b under diskwire, serving
        /data.bin of `size` bytes; returns (server, sha256 of the file)."""
        root = self.net.path("www")
        os.mkdir(root)
        sha = h.make_data(f"{root}/data.bin", size, seed=3)
        server = self.net.b.popen(
            "http", [sys.executable, "-m", "http.server", str(PORT),
                     "--bind", self.net.b.addr, "--directory", root],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(PORT), 30,
                   "http.server to listen", last=server.describe)
        return server, sha

    def wait_udp_receiver(self, node, port, timeout=20):
        """Waits until a heartbeat of host `node` advertises a UDP socket on
        `port` (its relay's receiving addresses, as `diskwire status --json`
        shows them on any kind of volume), so that its peers can carry
        datagrams to it."""
        suffix = f":{port}"

        def advertised():
            status = subprocess.run(
                [cli_path(), "status", "--volume", self.net.volume_of(node),
                 "--json"], capture_output=True, text=True, timeout=30)
            if status.returncode != 0:
                return False
            for process in json.loads(status.stdout).get("processes", []):
                udp = process.get("udp") or {}
                if process.get("node") == node and any(
                        address.split("/")[0].endswith(suffix)
                        for address in udp.get("receiving", [])):
                    return True
            return False

        h.wait_for(advertised, timeout,
                   f"a heartbeat of {node} to advertise UDP port {port}",
                   last=self.dw.logs)

    def log_lines(self, node, needle):
        """How many lines of host `node`'s diskwire log contain `needle`."""
        path = self.dw.log_path(node)
        if not h.file_size(path):
            return 0
        with open(path, errors="replace") as f:
            return sum(1 for line in f if needle in line)

    def context(self, xfer=None):
        parts = [xfer.describe()] if xfer else []
        parts.append(f"cuts: {[what for _, what in self.net.cuts.log]}")
        parts.append(self.dw.logs(warnings=20))
        return "\n".join(parts)

    def assert_byte_exact(self, xfer, timeout):
        """The nc transfer ends within `timeout` s with every byte, in order."""
        try:
            status = xfer.wait_done(timeout)
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context()}")
        self.assertEqual(status.get("send"), 0, self.context(xfer))
        self.assertEqual(status.get("recv"), 0, self.context(xfer))
        self.assertEqual(xfer.received(), xfer.size, self.context(xfer))
        self.assertEqual(xfer.sha_received(), xfer.sha_sent, self.context(xfer))

    def assert_received(self, client, out, size, sha, timeout, also=(),
                        describe=lambda: ""):
        """`client` exits 0 within `timeout` s (then each of `also`, the
        processes its output goes through, within 30 s more), and `out` holds
        `size` bytes with sha256 `sha`."""
        try:
            status = h.wait_exit(client, timeout)
            for proc in also:
                h.wait_exit(proc, 30)
        except h.WaitTimeout as e:
            self.fail(f"{e}: received {h.file_size(out)} of {size}\n"
                      f"{client.describe()}\n{describe()}{self.context()}")
        self.assertEqual(status, 0,
                         f"{client.describe()}\n{describe()}{self.context()}")
        self.assertEqual(h.file_size(out), size, self.context())
        self.assertEqual(h.sha256_file(out), sha)

    def peer_report(self, stream, key, timeout):
        """The JSON report of stream_peer "send" or "recv" once it exits."""
        try:
            return stream.wait_end(key, timeout)
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context()}")

    def start_epoll_streams(self, conns, size, rate, port=PORT):
        """Starts epoll_streams.py server on b and client on a, under diskwire."""
        procs = {}
        program = os.path.join(HERE, "epoll_streams.py")
        common = ["--conns", str(conns), "--size", str(size), "--rate", str(int(rate))]
        for role, host, where in (("server", self.net.b, ["--listen"]),
                                  ("client", self.net.a, ["--connect"])):
            report = open(self.net.path(f"{role}.json"), "wb")
            try:
                procs[role] = host.popen(
                    role, [sys.executable, program, role, *where,
                           f"{self.net.b.addr}:{port}", *common,
                           "--progress", self.net.path(f"{role}.progress")],
                    env=h.clean_env(self.dw.env(host.name)), stdout=report)
            finally:
                report.close()
            if role == "server":
                h.wait_for(lambda: self.net.b.listening(port), 20,
                           "epoll_streams server to listen")
        return procs

    def epoll_progress(self, role):
        try:
            with open(self.net.path(f"{role}.progress")) as f:
                return int(f.read() or 0)
        except FileNotFoundError:
            return 0

    def epoll_report(self, role):
        with open(self.net.path(f"{role}.json")) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else {}


def main():
    h.skip_unless_netns()
    unittest.main(verbosity=2)
