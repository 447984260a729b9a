"""DISKWIRE_MODE=storage: the same nc transfer with every byte over the volume.
The veth link carries at most a small fraction of the stream (connection
setup, ACK-free control traffic), and a cut makes no difference. With no
diskwire peer, the connection fails as TCP would instead of swallowing bytes."""

import os
import signal
import subprocess
import time

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 8 * h.MiB


class StorageModeTest(base.ShimTestCase):
    settings = {"MODE": "storage"}

    def test_every_byte_goes_over_the_volume(self):
        before = self.net.b.link_counters()["rx_bytes"]
        xfer = self.nc(SIZE, RATE).start()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        over_network = self.net.b.link_counters()["rx_bytes"] - before
        self.assertLess(over_network, SIZE // 100,
                        f"{over_network} bytes crossed the link\n{self.context()}")
        # No outage to report: the network never carried the stream.
        self.assertNotIn("after the network stopped", self.dw.logs())
        self.assertIn("first byte via storage", self.dw.logs())

    def test_a_cut_changes_nothing(self):
        xfer = self.nc(SIZE, RATE).start()
        xfer.wait_received(SIZE // 4, 30)
        self.net.cuts.link_down("a")
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))

    def listen(self):
        """nc on b, writing what it receives to the file it returns."""
        out = self.net.path("out")
        with open(out, "wb") as sink:
            self.net.b.popen("nc-listen", ["nc", "-d", "-l", str(base.PORT)],
                             env=h.clean_env(self.dw.env("b")), stdout=sink)
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
        return out

    def client(self, body, **popen):
        """A Python client on a with `s` connected to the listener."""
        script = ("import os, socket\n"
                  f"s = socket.create_connection(({self.net.b.addr!r}, "
                  f"{base.PORT}))\n" + body)
        return self.net.a.popen("client", ["python3", "-c", script],
                                env=h.clean_env(self.dw.env("a")), **popen)

    def assert_all_arrived(self, out, size):
        try:
            h.wait_for(lambda: os.path.getsize(out) >= size, 60,
                       "nc to read it all",
                       last=lambda: f"{os.path.getsize(out)} bytes")
        except h.WaitTimeout as e:
            self.fail(f"{e}\n{self.context()}")
        with open(out, "rb") as f:
            self.assertTrue(f.read() == bytes(range(256)) * (size // 256))

    def test_a_blocking_send_hands_over_every_byte(self):
        """One blocking send() of 8 MiB returns 8 MiB, as TCP's does: over the
        volume it used to return after the first 2 MiB, and a program that
        trusts a blocking send (as C programs writing to a socket commonly
        do) lost the rest."""
        size = 8 * h.MiB
        out = self.listen()
        proc = self.client(f"print(s.send(bytes(range(256)) * {size // 256}))\n"
                           "s.close()\n", stdout=subprocess.PIPE)
        h.wait_exit(proc, 60)
        self.assertEqual(proc.popen.stdout.read().decode().strip(), str(size),
                         self.context())
        self.assert_all_arrived(out, size)

    def test_a_sender_that_leaves_by__exit_delivers_every_byte(self):
        """_exit() skips atexit handlers, where the engine drains what the
        process wrote to the volume; Python's forking servers leave by
        os._exit, and C daemons' children by _exit. As TCP's kernel sends an
        exited process's bytes, every byte must arrive; the volume's share
        was lost instead."""
        size = 8 * h.MiB
        out = self.listen()
        proc = self.client(f"s.sendall(bytes(range(256)) * {size // 256})\n"
                           "s.close()\n"
                           "os._exit(0)\n")
        self.assertEqual(h.wait_exit(proc, 60), 0, proc.describe())
        self.assert_all_arrived(out, size)

    def test_no_diskwire_peer_fails_within_the_peer_timeout(self):
        with open(self.net.path("out"), "wb") as out:
            self.net.b.popen("nc-listen", ["nc", "-d", "-l", str(base.PORT)],
                             env=h.clean_env({}), stdout=out)
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
        started = time.monotonic()
        # A client that sends and then waits for an answer that never comes
        # (no -N: it does not exit at its input's end).
        client = self.net.a.popen(
            "nc-send", ["sh", "-c", "head -c 65536 /dev/zero; sleep 60"],
            stdout=subprocess.PIPE)
        sender = self.net.a.popen("nc", ["nc", self.net.b.addr, str(base.PORT)],
                                  env=h.clean_env(self.dw.env("a")),
                                  stdin=client.popen.stdout)
        client.popen.stdout.close()
        status = h.wait_exit(sender, base.PEER_TIMEOUT_MS / 1000 + 20)
        took = time.monotonic() - started
        self.assertLess(took, base.PEER_TIMEOUT_MS / 1000 + 10, self.context())
        self.assertIn("no diskwire peer took the connection", self.dw.logs(),
                      f"nc exited {status}")

    def test_a_plain_client_gets_an_end_of_file(self):
        """Issue 13, case 7: the server runs diskwire in storage mode, the
        client none. When no diskwire peer takes the connection, the client
        gets what TCP gives when a server goes away, an end of file (before:
        ECONNRESET)."""
        self.net.b.popen(
            "nc-listen", ["sh", "-c", "echo answer | nc -l " + str(base.PORT)],
            env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "nc to listen")
        probe = (
            "import socket, sys\n"
            f"s = socket.create_connection(({self.net.b.addr!r}, {base.PORT}))\n"
            "s.sendall(b'request\\n')\n"
            "try:\n"
            "    while s.recv(100): pass\n"
            "    print('eof')\n"
            "except OSError as e:\n"
            "    print('error', e.errno)\n")
        out = self.net.a.run(["python3", "-c", probe],
                             timeout=base.PEER_TIMEOUT_MS / 1000 + 30)
        self.assertEqual(out.stdout.strip(), "eof", self.context())
        self.assertIn("no diskwire peer took the connection", self.dw.logs())

    def test_an_abortive_close_crosses_the_volume_as_a_reset(self):
        """Issue 12, 6: the server sends a line and closes with SO_LINGER 0,
        over the volume: the client reads the line, then gets ECONNRESET as
        TCP gives it, not an end of file."""
        server = (
            "import socket, struct, time\n"
            f"l = socket.create_server(({self.net.b.addr!r}, {base.PORT}))\n"
            "c, _ = l.accept()\n"
            "c.recv(100)\n"
            "c.sendall(b'answer\\n')\n"
            "time.sleep(1)\n"
            "c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
            "c.close()\n"
            "time.sleep(5)\n")
        self.net.b.popen("server", ["python3", "-c", server],
                         env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the server to listen")
        client = (
            "import socket\n"
            f"s = socket.create_connection(({self.net.b.addr!r}, {base.PORT}))\n"
            "s.sendall(b'request\\n')\n"
            "got = b''\n"
            "try:\n"
            "    while chunk := s.recv(100): got += chunk\n"
            "    print(repr(got), 'eof')\n"
            "except OSError as e:\n"
            "    print(repr(got), 'error', e.errno)\n")
        proc = self.net.a.popen("client", ["python3", "-c", client],
                                env=h.clean_env(self.dw.env("a")), stdout=subprocess.PIPE)
        h.wait_exit(proc, 30)
        out = proc.popen.stdout.read().decode()
        self.assertEqual(out.strip(), "b'answer\\n' error 104", self.context())
        self.assertEqual(self.log_lines("a", "storage mode"), 1, self.context())


    def test_ctrl_c_ends_a_receive_waiting_on_the_volume(self):
        """A Python client waits for an answer that does not come, over the
        volume: Ctrl-C (SIGINT) must end it at once, as it does on TCP.
        Python's handler only sets a flag; the interpreter acts on it when
        the receive returns EINTR, which a wait inside diskwire never
        returned: the client hung until killed."""
        server = (
            "import socket, time\n"
            f"l = socket.create_server(({self.net.b.addr!r}, {base.PORT}))\n"
            "c, _ = l.accept()\n"
            "time.sleep(60)\n")
        self.net.b.popen("server", ["python3", "-c", server],
                         env=h.clean_env(self.dw.env("b")))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20,
                   "the server to listen")
        ready = self.net.path("client-ready")
        client = (
            "import socket\n"
            f"s = socket.create_connection(({self.net.b.addr!r}, {base.PORT}))\n"
            f"open({ready!r}, 'w').close()\n"
            "try:\n"
            "    s.recv(100)\n"
            "    print('returned')\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted')\n")
        proc = self.net.a.popen("client", ["python3", "-c", client],
                                env=h.clean_env(self.dw.env("a")),
                                stdout=subprocess.PIPE)
        h.wait_for(lambda: os.path.exists(ready), 20, "the client to connect")
        time.sleep(0.5)  # into the receive
        proc.signal(signal.SIGINT)
        try:
            h.wait_exit(proc, 5)
        except h.WaitTimeout as e:
            self.fail(f"{e}: Ctrl-C did not end the receive\n{self.context()}")
        self.assertEqual(proc.popen.stdout.read().decode().strip(),
                         "interrupted", self.context())


class StorageModeLunTest(StorageModeTest):
    """The same over a LUN: one formatted image as a loop device per host."""

    volume = "lun"

if __name__ == "__main__":
    base.main()
