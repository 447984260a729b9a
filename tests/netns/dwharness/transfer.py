"""Byte-stream transfers between the hosts with stock `nc` (netcat-openbsd).

A transfer: deterministic data in a file on a, a paced sender
(pacer.py | nc -N ADDR PORT) on a, a receiver (nc -d -l PORT > out, or through a
slow pacer) on b, and the sha256 of both ends. netcat-openbsd takes the port of
`-l` as a positional argument and shuts the socket down after stdin's EOF with
-N; the receiver exits when the stream ends.
"""

import hashlib
import os
import random
import subprocess
import sys
import time

from .procs import clean_env
from .wait import WaitTimeout, file_size, wait_exit, wait_for, wait_file_size

PACER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "pacer.py")
MiB = 1 << 20


def make_data(path, size, seed=1):
    """Writes `size` deterministic pseudo-random bytes to `path`; returns sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = rng.randbytes(min(left, MiB))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pacer_argv(rate, source=None, gate=None):
    argv = [sys.executable, PACER, "--rate", str(int(rate))]
    if source:
        argv += ["--input", source]
    if gate:
        argv += ["--gate", gate]
    return argv


class NcTransfer:
    """One nc transfer from `sender` to the other host.

    env_sender / env_receiver: extra environment for the nc processes only
    (e.g. the diskwire preload); the pacers never get it.
    slow_reader_rate: when set, the receiver's output goes through a pacer at
    that rate, so data piles up in the kernel queues (for cuts after the FIN).
    gate: when True the sender connects but sends nothing until go() is called.
    wrap_sender / wrap_receiver: argv prefixes for the nc processes, e.g.
    ["diskwire", "run", ..., "--"].
    """

    def __init__(self, net, *, size, rate, port=5001, sender="a", seed=1,
                 env_sender=None, env_receiver=None, slow_reader_rate=None,
                 gate=False, name="nc", wrap_sender=(), wrap_receiver=()):
        self.net, self.size, self.rate, self.port = net, size, rate, port
        self.src_host = net.host(sender)
        self.dst_host = net.other(sender)
        self.name = name
        self.source = net.path(f"{name}.src")
        self.output = net.path(f"{name}.out")
        self.gate = net.path(f"{name}.go") if gate else None
        self.sha_sent = make_data(self.source, size, seed)
        self.env_sender = clean_env(env_sender)
        self.env_receiver = clean_env(env_receiver)
        self.slow_reader_rate = slow_reader_rate
        self.wrap_sender, self.wrap_receiver = list(wrap_sender), list(wrap_receiver)
        self.procs = {}
        self.started = None

    def start(self, listen_timeout=20):
        """Starts the receiver, awaits its listening socket, starts the sender."""
        dst, src = self.dst_host, self.src_host
        out = open(self.output, "wb")
        listen = self.wrap_receiver + ["nc", "-d", "-l", str(self.port)]
        try:
            if self.slow_reader_rate:
                recv = dst.popen(f"{self.name}-recv", listen,
                                 env=self.env_receiver, stdout=subprocess.PIPE)
                self.procs["reader"] = dst.popen(
                    f"{self.name}-reader", pacer_argv(self.slow_reader_rate),
                    stdin=recv.popen.stdout, stdout=out)
                recv.popen.stdout.close()  # The reader holds the pipe now.
            else:
                recv = dst.popen(f"{self.name}-recv", listen, env=self.env_receiver,
                                 stdout=out)
        finally:
            out.close()
        self.procs["recv"] = recv
        wait_for(lambda: dst.listening(self.port), listen_timeout,
                 f"nc to listen on {dst.ns}:{self.port}", interval=0.1,
                 last=lambda: recv.describe())
        pacer = src.popen(f"{self.name}-pacer",
                          pacer_argv(self.rate, self.source, self.gate),
                          stdout=subprocess.PIPE)
        self.procs["pacer"] = pacer
        self.procs["send"] = src.popen(
            f"{self.name}-send", self.wrap_sender + ["nc", "-N", dst.addr, str(self.port)],
            env=self.env_sender, stdin=pacer.popen.stdout)
        pacer.popen.stdout.close()
        self.started = time.monotonic()
        return self

    def go(self):
        """Opens the gate: the sender starts writing."""
        with open(self.gate, "w"):
            pass

    def received(self):
        return file_size(self.output)

    def wait_received(self, at_least, timeout):
        """Waits until the receiver has written `at_least` bytes."""
        return wait_file_size(self.output, at_least, timeout)

    def wait_established(self, timeout):
        return wait_for(lambda: "ESTAB" in self.src_host.tcp_states(self.port),
                        timeout, f"an established connection to port {self.port}",
                        interval=0.1)

    def wait_done(self, timeout):
        """Waits for every process of the transfer to exit within `timeout` s
        in total; returns {name: exit status}."""
        deadline = time.monotonic() + timeout
        status = {}
        for key in ("send", "recv", "reader", "pacer"):
            if key in self.procs:
                try:
                    status[key] = wait_exit(self.procs[key],
                                            max(0.0, deadline - time.monotonic()))
                except WaitTimeout as e:
                    raise WaitTimeout(f"{e} (received {self.received()} of "
                                      f"{self.size} bytes) {self.describe()}") from None
        return status

    def sha_received(self):
        return sha256_file(self.output)

    def describe(self):
        return "; ".join(p.describe() for p in self.procs.values())


def hold_data_in_sender(net, sender="a"):
    """Small receive window at the receiver, large send buffer at the sender:
    a fast sender's bytes then wait, unacknowledged, in its own kernel queue
    (so a cut after its FIN still strands data there)."""
    net.other(sender).sysctl("net.ipv4.tcp_rmem", "4096 65536 131072")
    net.host(sender).sysctl("net.ipv4.tcp_wmem", "4096 4194304 4194304")


def wait_sender_fin(xfer, timeout):
    """Waits until the sender's socket has sent its FIN (FIN-WAIT-1/2)."""
    return wait_for(
        lambda: [s for s in xfer.src_host.tcp_states(xfer.port) if s.startswith("FIN-WAIT")],
        timeout, f"the sender's FIN on port {xfer.port}",
        last=lambda: xfer.src_host.tcp_sockets(xfer.port))

