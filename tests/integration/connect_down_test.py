"""Connections opened while the network is down (issue 10): stock programs
connect while the link between the hosts is cut, and the connection opens
over the volume with the peer's listener, which accepts it as any other.

Each case waits until the listener's process advertises its listener on the
volume, cuts the link, and only then starts the client."""

import json
import os
import random
import subprocess
import sys
import time

import dwharness as h
from dwharness.shim import cli_path
import shim_testbase as base

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO = os.path.join(HERE, "asyncio_echo.py")
OTHER_PORT = 5002  # selected, and nobody listens there
# Cuts at random moments of a connection's first second: seeds per kind of
# cut (DW_YOUNG_SEEDS=N runs more).
YOUNG_SEEDS = int(os.environ.get("DW_YOUNG_SEEDS", "3"))


# A client of the echo server that connects without blocking and waits for
# the connect in select(); exits 0 when 64 KiB came back exact.
SELECT_CLIENT = """
import select, socket, sys
s = socket.socket()
s.setblocking(False)
s.connect_ex((sys.argv[1], int(sys.argv[2])))
select.select([], [s], [], 30)
error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
if error:
    sys.exit("connect: SO_ERROR %d" % error)
s.setblocking(True)
data = bytes(range(256)) * 256
s.sendall(data)
s.shutdown(socket.SHUT_WR)
back = b""
while chunk := s.recv(65536):
    back += chunk
sys.exit(0 if back == data else "echo differs: %d bytes" % len(back))
"""

# The same client, that learns how its connect ended by calling connect()
# again every 2 ms, as some programs do, rather than waiting in select().
RETRY_CLIENT = SELECT_CLIENT.replace(
    """select.select([], [s], [], 30)
error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
""", """import errno, time
while (error := s.connect_ex((sys.argv[1], int(sys.argv[2])))) in (
        errno.EINPROGRESS, errno.EALREADY):
    time.sleep(0.002)
if error == errno.EISCONN:
    error = 0
""")


class ConnectWhileDownTest(base.ShimTestCase):
    select = f"{base.PORT},{OTHER_PORT}"

    def advertised(self, port, alive=True):
        status = subprocess.run(
            [cli_path(), "status", "--volume", self.net.volume, "--json"],
            capture_output=True, text=True, timeout=30)
        if status.returncode != 0:
            return False
        return any(address.endswith(f":{port}")
                   for process in json.loads(status.stdout).get("processes", [])
                   if process.get("alive") == alive
                   for address in process.get("listening", []))

    def wait_advertised(self, port=base.PORT):
        h.wait_for(lambda: self.advertised(port), 20,
                   f"the listener on port {port} to be advertised", last=self.dw.logs)

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
        self.assertEqual(self.log_lines("a", "opened over the volume"), 2, self.context())

    def test_one_connection_after_another_while_the_link_is_down(self):
        """A client that opens connections one after another to a server that
        serves one at a time, while the link is down: each close reaches the
        server at once, so that it takes the next connection (before: a
        resume's connect attempt held the end of file back for up to a
        second)."""
        server = ("import socket\n"
                  f"l = socket.create_server(({self.net.b.addr!r}, {base.PORT}))\n"
                  "while True:\n"
                  "    c, _ = l.accept()\n"
                  "    while (b := c.recv(100)):\n"
                  "        c.sendall(b)\n"
                  "    c.close()\n")
        self.net.b.popen("server", ["python3", "-c", server],
                         env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the server to listen")
        self.wait_advertised()
        self.net.cuts.link_down("b")
        client = ("import json, socket, time\n"
                  "times = []\n"
                  "for i in range(6):\n"
                  "    t0 = time.monotonic()\n"
                  f"    s = socket.create_connection(({self.net.b.addr!r}, {base.PORT}))\n"
                  "    t1 = time.monotonic()\n"
                  "    s.sendall(b'x')\n"
                  "    assert s.recv(1) == b'x'\n"
                  "    times.append((t1 - t0, time.monotonic() - t1))\n"
                  "    time.sleep(0.3)  # as a client does with its answer\n"
                  "    s.close()\n"
                  "print(json.dumps(times))\n")
        proc = self.net.a.popen("client", ["python3", "-c", client],
                                env=h.clean_env(self.dw.env("a")), stdout=subprocess.PIPE)
        self.assertEqual(h.wait_exit(proc, 120), 0, proc.describe() + self.context())
        times = json.loads(proc.popen.stdout.read().decode())
        print(f"connect, first echo (s): {times}", file=sys.stderr)
        for _, echo_s in times[1:]:
            self.assertLess(echo_s, 0.5, f"{times}\n{self.context()}")
        self.assertEqual(self.log_lines("a", "opened over the volume"), 6, self.context())

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
        self.assertEqual(self.log_lines("a", "opened over the volume"), 1, self.context())
        self.net.cuts.restore()
        h.wait_for(lambda: self.log_lines("a", "back on the network") >= 1, 30,
                   "the connection to move to TCP after the heal", last=self.context)
        self.assert_received(client, out, size, sha, base.transfer_bound(size, rate),
                             also=[server])

    def test_curl_fetches_from_http_server_while_the_link_is_down(self):
        self.curl_fetch_while_cut(lambda: self.net.cuts.link_down("b"))

    def test_curl_fetches_while_the_link_answers_with_resets(self):
        # curl's connect is non-blocking: the reset comes back after connect()
        # returned, as POLLERR and SO_ERROR = ECONNREFUSED, not as its errno.
        self.curl_fetch_while_cut(lambda: self.net.cuts.reset("b"))
        self.assertEqual(self.log_lines("a", "opened over the volume"), 1, self.context())

    def test_curl_after_curl_while_the_link_answers_with_resets(self):
        """A new process per connection: its loop thread starts with the
        connect and may take it over while curl looks at the refused socket
        (before: curl saw the reset in about one connection of fifty)."""
        server, sha = self.start_http_server(64 * 1024)
        self.wait_advertised()
        self.net.cuts.reset("b")
        outs = self.net.path("outs")
        os.mkdir(outs)
        runs = 60
        loop = (f"for i in $(seq {runs}); do curl -sS --fail -o {outs}/$i "
                f"http://{self.net.b.addr}:{base.PORT}/data.bin || exit 1; done")
        proc = self.net.a.popen("curls", ["bash", "-c", loop],
                                env=h.clean_env(self.dw.env("a")))
        self.assertEqual(h.wait_exit(proc, 180), 0, proc.describe() + self.context())
        for i in range(1, runs + 1):
            self.assertEqual(h.sha256_file(f"{outs}/{i}"), sha, f"download {i}")
        self.assertEqual(self.log_lines("a", "opened over the volume"), runs,
                         self.context())
        self.assertIsNone(server.poll(), "http.server still serves")

    def test_curl_in_a_loop_through_cuts_and_heals(self):
        """A client that connects again and again (a new curl every 100 ms)
        through a cut of each kind and its heal: every download arrives
        whole, whether its connection opened before the cut, over the volume
        during it, or at the moment it began or ended."""
        server, sha = self.start_http_server(256 * 1024)
        self.wait_advertised()
        cuts = {"down": lambda: self.net.cuts.link_down("a"),
                "reset": lambda: self.net.cuts.reset("b")}
        for kind, cut in cuts.items():
            with self.subTest(kind=kind):
                outs = self.net.path(f"outs-{kind}")
                os.mkdir(outs)
                runs = 60
                loop = (f"for i in $(seq {runs}); do curl -sS --fail -o {outs}/$i "
                        f"http://{self.net.b.addr}:{base.PORT}/data.bin || exit 1; "
                        "sleep 0.1; done")
                proc = self.net.a.popen(f"curls-{kind}", ["bash", "-c", loop],
                                        env=h.clean_env(self.dw.env("a")))
                self.assertTrue(h.still_running_after(proc, 1.5),
                                proc.describe() + self.context())
                cut()
                self.assertTrue(h.still_running_after(proc, 3),
                                "the loop goes on through the heal")
                self.net.cuts.restore()
                self.assertEqual(h.wait_exit(proc, 180), 0,
                                 proc.describe() + self.context())
                for i in range(1, runs + 1):
                    self.assertEqual(h.sha256_file(f"{outs}/{i}"), sha,
                                     f"{kind}: download {i}")
        self.assertIsNone(server.poll(), "http.server still serves")

    def curl_fetch_while_cut(self, cut):
        size = 2 * h.MiB
        server, sha = self.start_http_server(size)
        self.wait_advertised()
        cut()
        out = self.net.path("download.bin")
        curl = self.net.a.popen(
            "curl", ["curl", "-sS", "--fail", "-o", out,
                     f"http://{self.net.b.addr}:{base.PORT}/data.bin"],
            env=h.clean_env(self.dw.env("a")))
        self.assert_received(curl, out, size, sha, 60)
        self.assertIsNone(server.poll(), "http.server still serves")

    def test_asyncio_connections_open_during_the_outage(self):
        server_names, client_names = self.net.path("server.names"), self.net.path("client.names")
        server = self.start_echo_server(names=server_names)
        # A reset comes back after the non-blocking connect() returned: epoll
        # reports it, and SO_ERROR would say ECONNREFUSED.
        cuts = {"down": lambda: self.net.cuts.link_down("a"),
                "drop": lambda: self.net.cuts.blackhole("b"),
                "reset": lambda: self.net.cuts.reset("b")}
        for kind, cut in cuts.items():
            cut()
            self.run_echo_client(f"echo-client-{kind}", 3, 512 * 1024, names=client_names)
            self.net.cuts.restore()
        self.assertIsNone(server.poll(), "the server still runs")
        # getsockname/getpeername: each end names the other as it sees itself.
        server_view = sorted(pair for role, pair in self.read_names(server_names))
        client_view = sorted((peer, local) for role, (local, peer)
                             in self.read_names(client_names))
        self.assertEqual(len(client_view), 3 * len(cuts), client_view)
        self.assertEqual(server_view, client_view, self.context())
        for listener, client in client_view:
            self.assertEqual(listener, f"{self.net.b.addr}:{base.PORT}")
            self.assertTrue(client.startswith(f"{self.net.a.addr}:"), client)

    def test_a_select_client_refused_by_a_reset_opens_over_the_volume(self):
        # select() does not check paths: the client learns how its connect
        # ended from SO_ERROR, which answers for the connection opened over
        # the volume.
        server = self.start_echo_server()
        self.net.cuts.reset("b")
        client = self.net.a.popen(
            "select-client", [sys.executable, "-c", SELECT_CLIENT, self.net.b.addr,
                              str(base.PORT)],
            env=h.clean_env(self.dw.env("a")))
        status = h.wait_exit(client, 60)
        self.assertEqual(status, 0, f"{client.describe()}\n{self.context()}")
        self.assertEqual(self.log_lines("a", "opened over the volume"), 1, self.context())
        self.assertIsNone(server.poll(), "the server still runs")

    def test_a_client_that_calls_connect_again_opens_over_the_volume(self):
        """A reset comes back as the second connect()'s ECONNREFUSED, before
        the loop's look at connecting sessions; under a blackhole the loop
        takes the connect over, and connect() is then asked of a socket pair
        end. Both answer as the kernel would for the connection over the
        volume: EALREADY, then EISCONN."""
        server = self.start_echo_server()
        cuts = {"reset": lambda: self.net.cuts.reset("b"),
                "drop": lambda: self.net.cuts.blackhole("b")}
        for opened, (kind, cut) in enumerate(cuts.items(), start=1):
            with self.subTest(kind=kind):
                cut()
                client = self.net.a.popen(
                    f"retry-client-{kind}",
                    [sys.executable, "-c", RETRY_CLIENT, self.net.b.addr,
                     str(base.PORT)], env=h.clean_env(self.dw.env("a")))
                status = h.wait_exit(client, 60)
                self.net.cuts.restore()
                self.assertEqual(status, 0, f"{client.describe()}\n{self.context()}")
                self.assertEqual(self.log_lines("a", "opened over the volume"), opened,
                                 self.context())
        self.assertIsNone(server.poll(), "the server still runs")

    def test_a_connection_reset_before_its_first_data_call_shows_the_reset(self):
        """Made, then reset by the server before the client's first send or
        receive (its session still counts as connecting): the client sees
        the reset, and no second connection opens over the volume. The first
        SYN is dropped, so that the connect is made after connect() returned
        (on a LAN it is made before)."""
        server = ("import socket, struct, sys\n"
                  f"l = socket.create_server(({self.net.b.addr!r}, {base.PORT}))\n"
                  "c, _ = l.accept()\n"
                  "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
                  "c.close()\n"
                  "l.settimeout(3)\n"
                  "try:\n"
                  "    l.accept()\n"
                  "    sys.exit('a second connection came')\n"
                  "except socket.timeout:\n"
                  "    pass\n")
        srv = self.net.b.popen("server", ["python3", "-c", server],
                               env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the server to listen")
        self.wait_advertised()
        syn = ["INPUT", "-p", "tcp", "--syn", "--dport", str(base.PORT), "-j", "DROP"]
        self.net.b.iptables("-I", *syn)
        client = ("import select, socket, sys\n"
                  "s = socket.socket()\n"
                  "s.setblocking(False)\n"
                  f"s.connect_ex(({self.net.b.addr!r}, {base.PORT}))\n"
                  "p = select.poll()\n"
                  "p.register(s, select.POLLIN)\n"
                  "p.poll(10000)\n"
                  "try:\n"
                  "    s.recv(1)\n"
                  "    sys.exit('no reset')\n"
                  "except ConnectionResetError:\n"
                  "    pass\n")
        # A detection bound past the SYN's retransmission (1 s): the loop does
        # not take the connect over as a blackholed one.
        proc = self.net.a.popen("client", ["python3", "-c", client],
                                env=h.clean_env(self.dw.env("a", DETECT_MS=5000)))
        def syns_dropped():
            rules = self.net.b.iptables("-L", "INPUT", "-v", "-n", "-x").stdout
            return sum(int(line.split()[0]) for line in rules.splitlines()
                       if "DROP" in line and f"dpt:{base.PORT}" in line)

        h.wait_for(lambda: syns_dropped() >= 1, 20, "the client's first SYN to be dropped")
        self.net.b.iptables("-D", *syn)
        self.assertEqual(h.wait_exit(proc, 60), 0, proc.describe() + self.context())
        self.assertEqual(h.wait_exit(srv, 60), 0, srv.describe() + self.context())
        self.assertEqual(self.log_lines("a", "over the volume"), 0, self.context())

    @staticmethod
    def read_names(path):
        """[(role, (local, peer))] from an asyncio_echo.py --names file."""
        with open(path) as f:
            return [(words[0], (words[1].removeprefix("local="),
                                words[2].removeprefix("peer=")))
                    for words in (line.split() for line in f)]

    def start_echo_server(self, names=None):
        server = self.net.b.popen(
            "echo-server", [sys.executable, ECHO, "server", "--listen",
                            f"{self.net.b.addr}:{base.PORT}"]
            + (["--names", names] if names else []),
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the echo server")
        self.wait_advertised()
        return server

    def run_echo_client(self, name, conns, size, rate=0, cut=None, timeout=120,
                        names=None):
        """Runs the asyncio echo client on a; `cut` (a function) runs once the
        client has started. Returns its JSON report, asserting it succeeded."""
        report = self.net.path(f"{name}.json")
        with open(report, "wb") as f:
            client = self.net.a.popen(
                name, [sys.executable, ECHO, "client", "--connect",
                       f"{self.net.b.addr}:{base.PORT}", "--conns", str(conns),
                       "--size", str(size), "--rate", str(rate)]
                + (["--names", names] if names else []),
                env=h.clean_env(self.dw.env("a")), stdout=f)
        if cut is not None:
            cut()
        try:
            status = h.wait_exit(client, timeout)
        except h.WaitTimeout as e:
            self.fail(f"{name}: {e}\n{self.context()}")
        with open(report) as f:
            text = f.read()
        self.assertEqual(status, 0, f"{name}: {text}\n{self.context()}")
        self.assertEqual(json.loads(text)["ok"], conns, text)
        return json.loads(text)

    def test_cuts_in_the_first_second_of_a_connection(self):
        server = self.start_echo_server()
        cuts = {"down": lambda: self.net.cuts.link_down("a"),
                "drop": lambda: self.net.cuts.blackhole("b"),
                "reset": lambda: self.net.cuts.reset("b")}
        for seed in range(YOUNG_SEEDS):
            for kind, cut in cuts.items():
                delay = random.Random(f"{kind}{seed}").uniform(0, 1)

                def later(cut=cut, delay=delay):
                    time.sleep(delay)  # the moment of the cut is the test's input
                    cut()

                with self.subTest(kind=kind, seed=seed, delay=round(delay, 3)):
                    # 1.5 MiB echoed at 1 MiB/s: the cut falls in its first second.
                    self.run_echo_client(f"young-{kind}-{seed}", 1, 3 * h.MiB // 2,
                                         rate=h.MiB, cut=later)
                self.net.cuts.restore()
        self.assertIsNone(server.poll(), "the server still runs")

    def test_blackholed_connect_to_a_dead_listener_fails_within_the_bound(self):
        server = self.nc_listener(self.net.path("out"))
        server.kill()
        h.wait_for(lambda: self.advertised(base.PORT, alive=False), 30,
                   "the listener's process to be seen dead", last=self.dw.logs)
        self.net.cuts.blackhole("b")
        source = self.net.path("in")
        h.make_data(source, 1024)
        started = time.monotonic()
        with open(source, "rb") as f:
            run = subprocess.run(
                self.net.a.argv(["nc", "-v", "-N", self.net.b.addr, str(base.PORT)]),
                env=h.clean_env(self.dw.env("a")), stdin=f, capture_output=True,
                timeout=120)
        took = time.monotonic() - started
        # TCP would retry its SYN for about two minutes.
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("Connection timed out", run.stderr.decode(), f"{took:.1f} s\n{self.context()}")
        self.assertLess(took, base.DETECT_MS / 1000 + 5, self.context())

    def test_a_server_that_closes_and_exits_at_once(self):
        """Issue 13, case 4: a server reads to the client's end of file and
        exits at once. Its FIN was still in its writer's queue when its
        session counted as ended, the exit drain skipped it, and the client
        waited out the peer timeout (about 1 round in 5)."""
        self.net.cuts.blackhole("b")
        for round_ in range(10):
            out = self.net.path(f"got{round_}")
            with open(out, "wb") as f:
                server = self.net.b.popen(f"nc-l{round_}", ["nc", "-d", "-l", str(base.PORT)],
                                          env=h.clean_env(self.dw.env("b")), stdout=f)
            h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
            self.wait_advertised()
            started = time.monotonic()
            run = subprocess.run(
                self.net.a.argv(["sh", "-c",
                                 f"echo hello-{round_} | nc -N {self.net.b.addr} {base.PORT}"]),
                env=h.clean_env(self.dw.env("a")), capture_output=True, timeout=60)
            took = time.monotonic() - started
            self.assertEqual(run.returncode, 0, f"round {round_}: {run.stderr}")
            h.wait_exit(server, 10)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), f"hello-{round_}\n".encode(), f"round {round_}")
            # The detection bound and the open; no wait for a peer timeout.
            self.assertLess(took, base.DETECT_MS / 1000 + base.PEER_TIMEOUT_MS / 2000,
                            f"round {round_}: {took:.1f} s\n{self.context()}")

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
                    self.net.a.argv(["nc", "-v", "-N", self.net.b.addr, str(OTHER_PORT)]),
                    env=h.clean_env(env), stdin=f, capture_output=True, timeout=60)
            outcomes[name] = (run.returncode, run.stderr.decode().strip(),
                              time.monotonic() - started)
        self.assertNotEqual(outcomes["diskwire"][0], 0, outcomes)
        self.assertEqual(outcomes["diskwire"][:2], outcomes["plain"][:2], outcomes)
        self.assertLess(outcomes["diskwire"][2], 5, outcomes)


if __name__ == "__main__":
    base.main()
