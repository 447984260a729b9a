"""A stream between stream_peer.py processes, which report how each end ended
(complete, or the errno of the failure), where stock nc cannot."""

import json
import os
import sys

from .procs import clean_env
from .transfer import make_data
from .wait import WaitTimeout, file_size, wait_exit, wait_for

PEER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "stream_peer.py")


class PeerStream:
    """stream_peer.py send on `sender` -> stream_peer.py recv on the other host.

    env_sender / env_receiver: extra environment (e.g. the diskwire preload).
    """

    def __init__(self, net, *, size, rate, port=5002, sender="a", seed=2,
                 env_sender=None, env_receiver=None, name="peer"):
        self.net, self.size, self.port, self.rate = net, size, port, rate
        self.src_host, self.dst_host = net.host(sender), net.other(sender)
        self.name = name
        self.source = net.path(f"{name}.src")
        self.output = net.path(f"{name}.out")
        self.sha_sent = make_data(self.source, size, seed)
        self.env_sender = clean_env(env_sender)
        self.env_receiver = clean_env(env_receiver)
        self.procs = {}

    def _start(self, key, host, argv, env):
        report = open(self.net.path(f"{self.name}-{key}.json"), "wb")
        try:
            self.procs[key] = host.popen(f"{self.name}-{key}",
                                         [sys.executable, PEER] + argv,
                                         env=env, stdout=report)
        finally:
            report.close()

    def start(self, listen_timeout=20):
        self._start("recv", self.dst_host,
                    ["recv", "--listen", f"{self.dst_host.addr}:{self.port}",
                     "--output", self.output], self.env_receiver)
        wait_for(lambda: self.dst_host.listening(self.port), listen_timeout,
                 f"stream_peer to listen on {self.dst_host.ns}:{self.port}",
                 interval=0.1, last=lambda: self.procs["recv"].describe())
        self._start("send", self.src_host,
                    ["send", "--connect", f"{self.dst_host.addr}:{self.port}",
                     "--input", self.source, "--rate", str(int(self.rate))],
                    self.env_sender)
        return self

    def received(self):
        return file_size(self.output)

    def wait_received(self, at_least, timeout):
        return wait_for(lambda: self.received() >= at_least, timeout,
                        f"{self.output} to reach {at_least} bytes",
                        last=lambda: f"{self.received()} bytes; {self.describe()}")

    def wait_end(self, key, timeout):
        """Waits for "send" or "recv" to exit; returns its JSON report."""
        try:
            wait_exit(self.procs[key], timeout)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}: {self.describe()}") from None
        return self.report(key)

    def report(self, key):
        with open(self.net.path(f"{self.name}-{key}.json")) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"{self.name}-{key} printed no report: "
                                 f"{self.procs[key].describe()}")
        return json.loads(lines[-1])

    def describe(self):
        return "; ".join(p.describe() for p in self.procs.values())
