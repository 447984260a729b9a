"""A real corosync 3 two-node cluster through a data-network cut (issue 11).

One node per namespace, each under diskwire with DISKWIRE_SELECT=udp:5405 and
the shared volume; knet transport with crypto on, two_node, token 3000 ms
(also udpu, and token 1000 ms). Through a 30 s silent link cut,
`corosync-quorumtool -s` on each node keeps reporting two nodes, and still
after the heal. The same run without diskwire shows the membership dropping
to one node, so the test can fail.

corosync runs without systemd: each node gets its own mount namespace
(`unshare -m`) with a private /run and /var/lib/corosync, since its pid file
and state directory are fixed; its IPC socket is abstract, hence per network
namespace. Skipped where corosync is not installed (apt-get install corosync).
"""

import os
import re
import shutil
import time
import unittest

import dwharness as h
import shim_testbase as base

CUT_S = 30


def node_count(host):
    """The number of nodes corosync-quorumtool -s lists on `host` (0 when it
    does not answer)."""
    out = host.run(["corosync-quorumtool", "-s"], timeout=10, check=False)
    text = out.stdout if hasattr(out, "stdout") else str(out)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    m = re.search(r"^Nodes:\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else 0


class CorosyncTest(base.ShimTestCase):
    select = "udp:5405"
    token_ms = 3000
    transport = "knet"
    settings = {"DETECT_MS": 1000}

    def setUp(self):
        if not shutil.which("corosync") or not shutil.which("corosync-quorumtool"):
            self.skipTest("SKIPPED: corosync is not installed (apt-get install "
                          "corosync)")
        super().setUp()
        self.key = self.net.path("authkey")
        with open(self.key, "wb") as f:
            f.write(os.urandom(256))

    def config(self, node):
        crypto = ("crypto_cipher: aes256\n  crypto_hash: sha256\n"
                  f"  keyfile: {self.key}\n" if self.transport == "knet" else "")
        return f"""totem {{
  version: 2
  cluster_name: dwtest
  transport: {self.transport}
  token: {self.token_ms}
  {crypto}
}}
nodelist {{
  node {{
    ring0_addr: {self.net.a.addr}
    name: a
    nodeid: 1
  }}
  node {{
    ring0_addr: {self.net.b.addr}
    name: b
    nodeid: 2
  }}
}}
quorum {{
  provider: corosync_votequorum
  two_node: 1
}}
logging {{
  to_stderr: yes
  to_logfile: no
  to_syslog: no
  timestamp: on
}}
"""

    def start_node(self, name, with_diskwire):
        host = self.net.host(name)
        root = self.net.path(f"corosync-{name}")
        for sub in ("run", "lib", "log"):
            os.makedirs(f"{root}/{sub}", exist_ok=True)
        conf = f"{root}/corosync.conf"
        with open(conf, "w") as f:
            f.write(self.config(name))
        script = (f"mount -t tmpfs tmpfs /run && mount --bind {root}/lib "
                  f"/var/lib/corosync && mkdir -p /var/log/corosync && "
                  f"mount --bind {root}/log /var/log/corosync && "
                  f"exec corosync -f -c {conf}")
        env = self.dw.env(name) if with_diskwire else {}
        return host.popen("corosync", ["unshare", "-m", "sh", "-c", script],
                          env=h.clean_env(env))

    def run_cluster(self, with_diskwire):
        """Starts both nodes, waits for 2 nodes, cuts the link for CUT_S,
        heals; returns the smallest node count seen on each host during the
        cut and the count after the heal."""
        nodes = [self.start_node(n, with_diskwire) for n in ("a", "b")]
        self.addCleanup(lambda: [p.kill() for p in nodes])
        h.wait_for(lambda: node_count(self.net.a) == 2 and
                   node_count(self.net.b) == 2, 60,
                   "both corosync nodes to see two nodes",
                   last=lambda: "\n".join(p.describe() for p in nodes))
        time.sleep(2)
        self.net.cuts.link_down("a")
        lowest = {"a": 2, "b": 2}
        end = time.monotonic() + CUT_S
        while time.monotonic() < end:
            for name in ("a", "b"):
                lowest[name] = min(lowest[name],
                                   node_count(self.net.host(name)))
            time.sleep(0.5)
        self.net.cuts.link_up("a")
        time.sleep(self.token_ms / 1000 * 3)
        after = {n: node_count(self.net.host(n)) for n in ("a", "b")}
        return lowest, after, nodes

    def test_cluster_keeps_two_nodes_through_a_cut(self):
        lowest, after, nodes = self.run_cluster(with_diskwire=True)
        context = "\n".join(p.describe() for p in nodes) + self.context()
        self.assertEqual(lowest, {"a": 2, "b": 2}, context)
        self.assertEqual(after, {"a": 2, "b": 2}, context)
        self.assertGreater(self.log_lines("a", "go over the volume"), 0, context)


class CorosyncWithoutDiskwireTest(CorosyncTest):
    """The control: the same cut without diskwire drops a node."""

    def test_cluster_keeps_two_nodes_through_a_cut(self):
        lowest, _, nodes = self.run_cluster(with_diskwire=False)
        self.assertLess(min(lowest.values()), 2,
                        "\n".join(p.describe() for p in nodes))


class CorosyncUdpuTest(CorosyncTest):
    transport = "udpu"


class CorosyncShortTokenTest(CorosyncTest):
    token_ms = 1000
    settings = {"DETECT_MS": 300}


if __name__ == "__main__":
    unittest.main(verbosity=2)
