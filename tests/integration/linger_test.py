"""A connection the server has closed while its bytes are still in flight,
with the server process alive afterwards (the HTTP/1.0 pattern), cut before
the client has read them all: the closed-but-lingering session must fail over
and deliver everything, and the client must see the end of the stream, whatever
the server process does afterwards (issue 12, defect 1)."""

import os
import subprocess
import sys

import dwharness as h
import shim_testbase as base
from dwharness.transfer import pacer_argv

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 3 * h.MiB
READ_RATE = 512 * 1024  # the client's slow reader, bytes/s: a 6 s read


def start_slow_client(test, argv, out_path):
    """Starts `argv` on host a under diskwire, its output through a slow
    reader into `out_path`; returns (client, reader)."""
    out = open(out_path, "wb")
    try:
        client = test.net.a.popen(argv[0], argv, env=h.clean_env(test.dw.env("a")),
                                  stdout=subprocess.PIPE)
        reader = test.net.a.popen("reader", pacer_argv(READ_RATE),
                                  stdin=client.popen.stdout, stdout=out)
        client.popen.stdout.close()
    finally:
        out.close()
    return client, reader


class LingerTest(base.ShimTestCase):
    def setUp(self):
        super().setUp()
        # The server's bytes wait in its own kernel queue, unacknowledged, when
        # it closes: a small receive window at the client, a large send buffer
        # at the server.
        h.hold_data_in_sender(self.net, sender="b")

    def start_server(self, *flags):
        source = self.net.path("served.bin")
        self.sha_sent = h.make_data(source, SIZE, seed=7)
        self.closed = self.net.path("closed")
        self.server = self.net.b.popen(
            "linger-server",
            [sys.executable, os.path.join(HERE, "linger_server.py"), "--listen",
             f"{self.net.b.addr}:{base.PORT}", "--input", source, "--closed-file",
             self.closed, *flags],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 30,
                   "linger_server to listen", last=self.server.describe)

    def start_slow_client(self):
        """Stock nc under diskwire, its output through a slow reader."""
        self.out = self.net.path("received.bin")
        self.client, self.reader = start_slow_client(
            self, ["nc", "-d", self.net.b.addr, str(base.PORT)], self.out)

    def cut_after_close_and_check(self, after_cut=lambda: None):
        h.wait_for(lambda: os.path.exists(self.closed), 30,
                   "the server to close the connection", last=self.server.describe)
        h.wait_file_size(self.out, SIZE // 8, 30)
        self.assertLess(h.file_size(self.out), SIZE // 2,
                        "the client read too fast for the cut to matter")
        self.net.cuts.link_down("a")
        after_cut()
        self.assert_received(self.client, self.out, SIZE, self.sha_sent,
                             SIZE / READ_RATE + base.SLACK_S, also=[self.reader])

    def test_closed_connection_fails_over_and_delivers_everything(self):
        self.start_server()
        self.start_slow_client()
        self.cut_after_close_and_check()
        self.assertIsNone(self.server.poll(), "the server process must live on")

    def test_shutdown_then_close(self):
        self.start_server("--shutdown")
        self.start_slow_client()
        self.cut_after_close_and_check()
        self.assertIsNone(self.server.poll(), "the server process must live on")

    def test_server_exits_after_the_failover(self):
        exit_file = self.net.path("exit")
        self.start_server("--exit-on", exit_file)
        self.start_slow_client()

        def exit_server_once_failed_over():
            h.wait_for(lambda: "failing over" in self.dw.logs(), 20,
                       "the failover", last=self.dw.logs)
            open(exit_file, "w").close()
            self.assertEqual(h.wait_exit(self.server, 30), 0)

        self.cut_after_close_and_check(exit_server_once_failed_over)

    def test_a_server_that_exits_at_once_leaves_the_end_of_file(self):
        """It closes and exits as soon as its bytes are queued (a forked
        child's end), no cut: stock socat, read slowly, gets every byte, then
        the end of file, and exits 0 (before: the read after the last byte
        failed with ETIMEDOUT once the server's heartbeat went stale)."""
        exit_file = self.net.path("exit")
        open(exit_file, "w").close()
        self.start_server("--exit-on", exit_file)
        self.out = self.net.path("received.bin")
        client, reader = start_slow_client(
            self, ["socat", "-u", f"TCP:{self.net.b.addr}:{base.PORT}", "STDOUT"],
            self.out)
        self.assertEqual(h.wait_exit(self.server, 30), 0)
        self.assertLess(h.file_size(self.out), SIZE // 2,
                        "the client read too fast for the exit to matter")
        self.assert_received(client, self.out, SIZE, self.sha_sent,
                             SIZE / READ_RATE + base.SLACK_S, also=[reader])
        self.assertEqual(self.log_lines("a", "WARN"), 0, self.context())
        # The server's exit handed its tail to the volume; the client's log
        # says so, not that the network failed (an operator alerting on
        # failovers would page for every such exit).
        self.assertEqual(self.log_lines(
            "b", "exiting with bytes the peer has not acknowledged"), 1,
            self.context())
        self.assertEqual(self.log_lines("a", "the peer's process exits"), 1,
                         self.context())
        self.assertEqual(self.log_lines("a", "(the peer announced a failover)"),
                         0, self.context())


class LingerHttpTest(base.ShimTestCase):
    """Stock curl from Python's http.server (HTTP/1.0: the server closes after
    the body and serves on), the cut after the close."""

    def test_http_server_closes_then_cut(self):
        h.hold_data_in_sender(self.net, sender="b")
        server, sha_sent = self.start_http_server(SIZE)
        out = self.net.path("download.bin")
        # curl's --limit-rate reads ahead: a slow pipe holds it back.
        curl, reader = start_slow_client(
            self, ["curl", "-sS", "--fail",
                   f"http://{self.net.b.addr}:{base.PORT}/data.bin"], out)
        # http.server has closed its end once the whole body sat in its queue.
        h.wait_for(lambda: [s for s in self.net.b.tcp_states(base.PORT)
                            if s.startswith("FIN-WAIT")], 30,
                   "http.server to close the connection",
                   last=lambda: self.net.b.tcp_sockets(base.PORT))
        self.assertLess(h.file_size(out), SIZE // 2)
        self.net.cuts.link_down("a")
        self.assert_received(curl, out, SIZE, sha_sent,
                             SIZE / READ_RATE + base.SLACK_S, also=[reader])


if __name__ == "__main__":
    base.main()
