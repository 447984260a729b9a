"""Servers that fork (issue 12, defect 2): the parent accepts, forks and
closes its copy, the child (or a program it executes) serves. Its close must
not end the child's connection, and the child's connection must survive a
cut: the child adopts what it inherits. Stock Python ForkingTCPServer and
stock sshd (which re-executes itself for every connection)."""

import os
import shutil
import subprocess
import sys

import dwharness as h
import shim_testbase as base
from dwharness.transfer import PACER

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 24 * h.MiB
RATE = 6 * h.MiB


class ForkingServerTest(base.ShimTestCase):
    def fetch(self, cut=None):
        source = self.net.path("served.bin")
        sha_sent = h.make_data(source, SIZE, seed=11)
        server = self.net.b.popen(
            "fork-server",
            [sys.executable, os.path.join(HERE, "fork_server.py"), "--listen",
             f"{self.net.b.addr}:{base.PORT}", "--input", source, "--rate",
             str(RATE)],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30,
                   "the forking server to listen", last=server.describe)
        out = self.net.path("received.bin")
        with open(out, "wb") as sink:
            client = self.net.a.popen(
                "nc", ["nc", "-d", self.net.b.addr, str(base.PORT)],
                env=h.clean_env(self.dw.env("a")), stdout=sink)
        if cut:
            h.wait_file_size(out, SIZE // 4, 30)
            cut()
        self.assert_received(client, out, SIZE, sha_sent,
                             base.transfer_bound(SIZE, RATE))

    def test_parent_close_does_not_end_the_childs_connection(self):
        self.fetch()

    def test_childs_connection_survives_a_cut(self):
        self.fetch(cut=lambda: self.net.cuts.link_down("a"))


SSHD_CONFIG = """Port {port}
ListenAddress {addr}
HostKey {workdir}/host_key
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
"""


class SshdTest(base.ShimTestCase):
    """Stock sshd, which forks and re-executes itself for each connection
    (the child inherits the socket across exec), streaming to stock ssh."""

    select = 2222
    # Debug: sshd's sandboxed network child must survive every line the
    # engine could log (it may not write to a file, nor send to syslog).
    settings = {"LOG_LEVEL": "debug"}

    def setUp(self):
        if not shutil.which("sshd") and not os.path.exists("/usr/sbin/sshd"):
            self.skipTest("SKIPPED: sshd is not installed (apt-get install openssh-server)")
        if os.geteuid() != 0:
            self.skipTest("SKIPPED: sshd needs root")
        super().setUp()
        work = self.net.workdir
        os.chmod(work, 0o755)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            f"{work}/{key}"], check=True)
        shutil.copy(f"{work}/client_key.pub", f"{work}/authorized_keys")
        with open(f"{work}/sshd_config", "w") as f:
            f.write(SSHD_CONFIG.format(port=2222, addr=self.net.b.addr, workdir=work))
        os.makedirs("/run/sshd", exist_ok=True)
        self.sshd = self.net.b.popen(
            "sshd", ([] if not os.environ.get("DW_STRACE") else
                     ["strace", "-f", "-o", os.environ["DW_STRACE"]]) + ["/usr/sbin/sshd", "-D", "-e", "-f", f"{work}/sshd_config"],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(2222), 30, "sshd to listen",
                   last=self.sshd.describe)

    def ssh(self, command, out):
        work = self.net.workdir
        with open(out, "wb") as sink:
            return self.net.a.popen(
                "ssh", ["ssh", "-i", f"{work}/client_key", "-p", "2222",
                        "-o", "StrictHostKeyChecking=no",
                        "-o", f"UserKnownHostsFile={work}/known_hosts",
                        "-o", "BatchMode=yes", "-o", "ServerAliveInterval=0",
                        f"root@{self.net.b.addr}", command],
                env=h.clean_env(self.dw.env("a")), stdout=sink)

    def stream(self, cut=None):
        source = self.net.path("ssh.src")
        sha_sent = h.make_data(source, SIZE, seed=5)
        out = self.net.path("ssh.out")
        client = self.ssh(f"/usr/bin/python3 {PACER} --rate {RATE} "
                          f"--input {source}", out)
        if cut:
            try:
                h.wait_file_size(out, SIZE // 4, 60)
            except h.WaitTimeout as e:
                self.fail(f"{e}\n{client.describe()}\n{self.sshd.describe()}\n"
                          f"{self.context()}")
            cut()
        self.assert_received(client, out, SIZE, sha_sent,
                             base.transfer_bound(SIZE, RATE),
                             describe=lambda: self.sshd.describe() + "\n")

    def test_login_works(self):
        out = self.net.path("hello.out")
        client = self.ssh("echo hello", out)
        try:
            status = h.wait_exit(client, 60)
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{client.describe()}\n{self.sshd.describe()}\n"
                      f"{self.context()}")
        self.assertEqual(status, 0, f"{client.describe()}\n{self.sshd.describe()}\n"
                         f"{self.context()}")
        with open(out) as f:
            self.assertEqual(f.read(), "hello\n")

    def test_stream_survives_a_silent_cut(self):
        self.stream(cut=lambda: self.net.cuts.link_down("a"))



class ForkingServerLunTest(ForkingServerTest):
    """The same over a LUN: the child's reach of the volume is its device."""

    volume = "lun"


class SshdLunTest(SshdTest):
    """The same over a LUN: sshd closes every fd it does not know of, the
    engine's device included, unless the engine hides it."""

    volume = "lun"

if __name__ == "__main__":
    base.main()
