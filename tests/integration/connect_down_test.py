"""Connections opened while the network is down (issue 10): stock programs
connect while the link between the hosts is cut, and the connection opens
over the volume with the peer's listener, which accepts it as any other.

Each case waits until the listener's process advertises its listener on the
volume, cuts the link, and only then starts the client."""

import json
import os
import subprocess
import sys
import time

import dwharness as h
from dwharness.shim import cli_path
import shim_testbase as base

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO = os.path.join(HERE, "asyncio_echo.py")
OTHER_PORT = 5002  # selected, and nobody listens there


class ConnectWhileDownTest(base.ShimTestCase):
    select = f"{base.PORT},{OTHER_PORT}"

    def advertised(self, port):
        status = subprocess.run(
            [cli_path(), "status", "--volume", self.net.volume, "--json"],
            capture_output=True, text=True, timeout=30)
        if status.returncode != 0:
            return False
        return any(address.endswith(f":{port}")
                   for process in json.loads(status.stdout).get("processes", [])
                   if process.get("alive")
                   for address in process.get("listening", []))

    def wait_advertised(self, port=base.PORT):
        h.wait_for(lambda: self.advertised(port), 20,
                   f"the listener on port {port} to be advertised", last=self.dw.logs)

    def log_count(self, node, needle):
        path = self.dw.log_path(node)
        if not h.file_size(path):
            return 0
        with open(path, errors="replace") as f:
            return sum(1 for line in f if needle in line)

    def nc_listener(self, out, keep=False):
        argv = ["nc", "-d"] + (["-k"] if keep else []) + ["-l", str(base.PORT)]
        with open(out, "wb") as f:
            server = self.net.b.popen("nc-listen", argv,
                                      env=h.clean_env(self.dw.env("b")), stdout=f)
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
        self.wait_advertised()
        return server

    def nc_client(self, source, port=base.PORT, name="nc-send"):
        with open(source, "rb") as f:
            return self.net.a.popen(name, ["nc", "-N", self.net.b.addr, str(port)],
                                    env=h.clean_env(self.dw.env("a")), stdin=f)

    def test_nc_twice_to_one_listener_while_the_link_is_down(self):
        out = self.net.path("out")
        server = self.nc_listener(out, keep=True)
        self.net.cuts.link_down("a")
        sources = [self.net.path(f"in{i}") for i in range(2)]
        expected = b""
        for i, path in enumerate(sources):
            h.make_data(path, 256 * 1024, seed=i)
            with open(path, "rb") as f:
                expected += f.read()
        for i, source in enumerate(sources):
            client = self.nc_client(source, name=f"nc-send-{i}")
            self.assertEqual(h.wait_exit(client, 60), 0, client.describe() + self.context())
            h.wait_for(lambda: h.file_size(out) >= 256 * 1024 * (i + 1), 30,
                       f"connection {i}'s bytes at the listener", last=self.context)
        self.assertTrue(server.poll() is None, "nc -k keeps listening")
        with open(out, "rb") as f:
            got = f.read()
        self.assertEqual(len(got), len(expected), self.context())
        self.assertEqual(got, expected, "both connections' bytes, in turn")
        self.assertEqual(self.log_count("a", "opened over the volume"), 2, self.context())

    def test_blackholed_nc_stream_opens_over_the_volume_and_returns_to_tcp(self):
        size, rate = 12 * h.MiB, 2 * h.MiB
        out = self.net.path("out")
        server = self.nc_listener(out)
        self.net.cuts.blackhole("b")
        source = self.net.path("in")
        sha = h.make_data(source, size, seed=7)
        pacer = self.net.a.popen("pacer", h.pacer_argv(rate, source),
                                 stdout=subprocess.PIPE)
        client = self.net.a.popen("nc-send", ["nc", "-N", self.net.b.addr, str(base.PORT)],
                                  env=h.clean_env(self.dw.env("a")), stdin=pacer.popen.stdout)
        pacer.popen.stdout.close()
        h.wait_file_size(out, 2 * h.MiB, 30)
        self.assertEqual(self.log_count("a", "opened over the volume"), 1, self.context())
        self.net.cuts.restore()
        h.wait_for(lambda: self.log_count("a", "back on the network") >= 1, 30,
                   "the connection to move to TCP after the heal", last=self.context)
        self.assert_received(client, out, size, sha, base.transfer_bound(size, rate),
                             also=[server])

    def test_curl_fetches_from_http_server_while_the_link_is_down(self):
        size = 2 * h.MiB
        server, sha = self.start_http_server(size)
        self.wait_advertised()
        self.net.cuts.link_down("b")
        out = self.net.path("download.bin")
        curl = self.net.a.popen(
            "curl", ["curl", "-sS", "--fail", "-o", out,
                     f"http://{self.net.b.addr}:{base.PORT}/data.bin"],
            env=h.clean_env(self.dw.env("a")))
        self.assert_received(curl, out, size, sha, 60)
        self.assertIsNone(server.poll(), "http.server still serves")

    def test_asyncio_connections_open_during_the_outage(self):
        server = self.net.b.popen(
            "echo-server", [sys.executable, ECHO, "server", "--listen",
                            f"{self.net.b.addr}:{base.PORT}"],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the echo server")
        self.wait_advertised()
        for cut in ("down", "drop"):
            if cut == "down":
                self.net.cuts.link_down("a")
            else:
                self.net.cuts.blackhole("b")
            report = self.net.path(f"client-{cut}.json")
            with open(report, "wb") as f:
                client = self.net.a.popen(
                    f"echo-client-{cut}", [sys.executable, ECHO, "client", "--connect",
                                           f"{self.net.b.addr}:{base.PORT}", "--conns", "3",
                                           "--size", str(512 * 1024)],
                    env=h.clean_env(self.dw.env("a")), stdout=f)
            status = h.wait_exit(client, 120)
            with open(report) as f:
                text = f.read()
            self.assertEqual(status, 0, f"{cut}: {text}\n{self.context()}")
            self.assertEqual(json.loads(text)["ok"], 3, text)
            self.net.cuts.restore()
        self.assertIsNone(server.poll(), "the server still runs")

    def test_connect_to_a_port_nobody_listens_on_fails_as_tcp_does(self):
        self.nc_listener(self.net.path("out"))  # a listener, but on another port
        self.net.cuts.link_down("a")
        source = self.net.path("in")
        h.make_data(source, 1024)
        outcomes = {}
        for name, env in (("plain", {}), ("diskwire", self.dw.env("a"))):
            started = time.monotonic()
            with open(source, "rb") as f:
                run = subprocess.run(
                    self.net.a.argv(["nc", "-N", self.net.b.addr, str(OTHER_PORT)]),
                    env=h.clean_env(env), stdin=f, capture_output=True, timeout=60)
            outcomes[name] = (run.returncode, run.stderr.decode().strip(),
                              time.monotonic() - started)
        self.assertNotEqual(outcomes["diskwire"][0], 0, outcomes)
        self.assertEqual(outcomes["diskwire"][:2], outcomes["plain"][:2], outcomes)
        self.assertLess(outcomes["diskwire"][2], 5, outcomes)


if __name__ == "__main__":
    base.main()
