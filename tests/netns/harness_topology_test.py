"""Self-tests of the harness's hosts and cleanup (no diskwire; needs root)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

import dwharness as h
from dwharness.peers import PeerStream

HERE = os.path.dirname(os.path.abspath(__file__))

# A child that builds two hosts with a process in each, reports them, and waits
# to be killed.
CHILD = r"""
import json, signal, sys
import dwharness as h
net = h.TwoHosts()
procs = [net.a.popen("sleeper", ["sleep", "600"]), net.b.popen("sleeper", ["sleep", "600"])]
print(json.dumps({"ns": [net.a.ns, net.b.ns], "workdir": net.workdir,
                  "pids": [p.pid for p in procs]}), flush=True)
signal.pause()
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


class TopologyTest(unittest.TestCase):
    def test_hosts_have_their_addresses_and_talk_over_the_link(self):
        with h.TwoHosts() as net:
            self.assertIn(net.a.ns, h.list_namespaces())
            self.assertIn(net.b.ns, h.list_namespaces())
            self.assertRegex(net.a.addr, r"^10\.77\.\d+\.1$")
            stream = PeerStream(net, size=256 * 1024, rate=0).start()
            self.assertEqual(stream.wait_end("send", 20)["result"], "complete")
            self.assertEqual(stream.wait_end("recv", 20)["bytes"], 256 * 1024)
            self.assertEqual(h.sha256_file(stream.output), stream.sha_sent)
            counters = net.b.link_counters()
            self.assertGreaterEqual(counters["rx_bytes"], 256 * 1024)

    def test_listening_sees_a_listener_only_once_it_exists(self):
        with h.TwoHosts() as net:
            self.assertFalse(net.b.listening(6000))
            net.b.popen("listener", ["nc", "-d", "-l", "6000"])
            h.wait_for(lambda: net.b.listening(6000), 10, "nc to listen")
            self.assertFalse(net.a.listening(6000))  # Namespaces are separate.

    def test_close_removes_processes_namespaces_and_workdir(self):
        net = h.TwoHosts()
        sleeper = net.a.popen("sleeper", ["sleep", "600"])
        names, workdir = [net.a.ns, net.b.ns], net.workdir
        net.close()
        self.assertIsNotNone(sleeper.poll())
        self.assertFalse(set(names) & set(h.list_namespaces()))
        self.assertFalse(os.path.exists(workdir))
        net.close()  # Idempotent.

    def test_link_down_drops_routes_and_link_up_restores_them(self):
        with h.TwoHosts() as net:
            before = net.a.ip("route", "show").stdout
            self.assertIn("dw0", before)
            net.cuts.link_down("a")
            self.assertNotIn("dw0", net.a.ip("route", "show").stdout)
            net.cuts.link_up("a")
            self.assertEqual(net.a.ip("route", "show").stdout, before)

    def test_fuse_volume_views_share_one_directory(self):
        if not shutil.which("bindfs"):
            self.skipTest("bindfs is not installed")
        with h.TwoHosts(volume="fuse") as net:
            view_a, view_b = net.volume_of("a"), net.volume_of("b")
            self.assertNotEqual(view_a, view_b)
            net.a.run(["sh", "-c", f"echo -n hello > {view_a}/f"])
            h.wait_for(lambda: net.b.run(["cat", f"{view_b}/f"]).stdout == "hello",
                       10, "a's write to show through b's view")
            mounts = open("/proc/self/mounts").read()
            self.assertIn(view_a, mounts)
        mounts = open("/proc/self/mounts").read()
        self.assertNotIn(view_a, mounts)
        self.assertNotIn(view_b, mounts)

    def _child(self):
        env = dict(os.environ, PYTHONPATH=HERE)
        child = subprocess.Popen([sys.executable, "-c", CHILD], env=env,
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        line = child.stdout.readline()
        self.assertTrue(line, "the child printed nothing")
        return child, json.loads(line)

    def _assert_gone(self, info):
        self.assertFalse(set(info["ns"]) & set(h.list_namespaces()))
        self.assertFalse(os.path.exists(info["workdir"]))
        for pid in info["pids"]:
            h.wait_for(lambda: not alive(pid), 10, f"process {pid} to end")

    def test_sigterm_cleans_up_everything(self):
        child, info = self._child()
        child.send_signal(signal.SIGTERM)
        self.assertEqual(h.wait_exit(child, 30), -signal.SIGTERM)
        self._assert_gone(info)

    def test_sigint_cleans_up_everything(self):
        child, info = self._child()
        child.send_signal(signal.SIGINT)
        self.assertEqual(h.wait_exit(child, 30), -signal.SIGINT)
        self._assert_gone(info)

    def test_namespaces_of_a_killed_run_are_reaped_by_the_next(self):
        child, info = self._child()
        child.kill()  # SIGKILL: no cleanup runs in the child.
        h.wait_exit(child, 10)
        self.assertTrue(set(info["ns"]) <= set(h.list_namespaces()))
        with h.TwoHosts():
            self.assertFalse(set(info["ns"]) & set(h.list_namespaces()))
        for pid in info["pids"]:
            h.wait_for(lambda: not alive(pid), 10, f"process {pid} to end")
        # The child's work directory has no owner left; remove it here.
        subprocess.run(["rm", "-rf", info["workdir"]], check=True)


def tearDownModule():
    assert not h.own_namespaces(), f"left behind: {h.own_namespaces()}"


if __name__ == "__main__":
    h.skip_unless_netns()
    unittest.main(verbosity=2)
