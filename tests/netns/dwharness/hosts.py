"""Two hosts as network namespaces joined by a veth link, and a shared volume.

TwoHosts creates namespaces named dwh-<pid>-<n>-a and dwh-<pid>-<n>-b (unique
per process and per instance), one veth pair "dw0" between them with
10.77.<x>.1/24 on a and 10.77.<x>.2/24 on b, and a work directory holding the
shared volume (`ip netns exec` shares the filesystem). Nothing is created in,
or sent to, the caller's own network namespace.

The volume is one directory that both hosts use (volume="shared"), or
(volume="fuse") one directory seen by each host through its own bindfs FUSE
mount, net.volume_of("a") and net.volume_of("b"): like a network filesystem,
neither sends change notifications for the other's writes and each may see
stale sizes for about a second. With volume="lun", one image file laid out by
`diskwire format` is attached as two loop devices, one per host: each has its
own page cache, so buffered reads through one miss the other's writes, as on
a LUN two hosts share.

Use it as a context manager; every resource is also registered with the
cleanup registry, so an exception, a signal or interpreter exit removes
processes, namespaces (and with them their links and iptables rules) and the
work directory. Namespaces left by a run that was SIGKILLed (its pid is gone)
are removed when the next TwoHosts starts.

Thread safety: one thread sets up and closes; Host methods may be called from
several threads (each is one subprocess call).
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile

from . import cleanup
from .cuts import Cuts
from .procs import Proc, clean_env
from .wait import WaitTimeout, wait_for

LINK = "dw0"
_NS_PATTERN = re.compile(r"^dwh-(\d+)-\d+-[ab]$")
_instances = itertools.count()


def run(argv, timeout=30, check=True):
    """Runs a short command; raises RuntimeError with its stderr on failure."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
    return result


class Host:
    """One namespace: runs commands in it and reads its sockets and link."""

    def __init__(self, name, ns, addr, workdir, on_proc=None):
        self.name = name  # "a" or "b"
        self.ns = ns
        self.addr = addr
        self.workdir = workdir
        self._on_proc = on_proc or (lambda proc: None)

    def argv(self, argv):
        return ["ip", "netns", "exec", self.ns] + list(argv)

    def run(self, argv, timeout=30, check=True):
        return run(self.argv(argv), timeout=timeout, check=check)

    def popen(self, name, argv, *, env=None, stdin=None, stdout=None):
        """Starts `argv` inside this host; stderr goes to <workdir>/<name>.stderr.

        `env` defaults to the caller's environment without diskwire settings.
        """
        proc = Proc(f"{self.name}-{name}", self.argv(argv),
                    env=env if env is not None else clean_env(), stdin=stdin,
                    stdout=stdout, log_dir=self.workdir)
        self._on_proc(proc)
        return proc

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.ns] + list(args), check=check)

    def iptables(self, *args):
        return self.run(["iptables", "-w", "10"] + list(args))

    def tcp_sockets(self, port, listening=False):
        """`ss` lines of TCP sockets with local or remote port `port`."""
        flags = "-Htnl" if listening else "-Htna"
        out = self.run(["ss", flags, f"( sport = :{port} or dport = :{port} )"]).stdout
        return [line for line in out.splitlines() if line.strip()]

    def listening(self, port):
        return bool(self.tcp_sockets(port, listening=True))

    def tcp_states(self, port):
        """States (ESTAB, FIN-WAIT-1, ...) of the connected sockets on `port`."""
        return [line.split()[0] for line in self.tcp_sockets(port)
                if not line.startswith("LISTEN")]

    def sysctl(self, name, value):
        """Sets a per-namespace sysctl (e.g. net.ipv4.tcp_rmem) in this host."""
        self.run(["sysctl", "-q", "-w", f"{name}={value}"])

    def link_counters(self):
        """{"rx_bytes", "tx_bytes", ...} of this host's end of the veth link."""
        out = self.ip("-s", "-j", "link", "show", "dev", LINK).stdout
        stats = json.loads(out)[0]["stats64"]
        return {"rx_bytes": stats["rx"]["bytes"], "tx_bytes": stats["tx"]["bytes"]}


LUN_BYTES = 2 << 30  # sparse: only what is written takes space


class TwoHosts:
    """Hosts a and b, the link between them, the volume, and the cut controls."""

    def __init__(self, prefix="dwh", volume="shared", parent=None):
        """`parent`: where the work directory goes (default: the test's
        temporary directory)."""
        if volume not in ("shared", "fuse", "lun"):
            raise ValueError(f"volume must be shared, fuse or lun, not {volume!r}")
        n = next(_instances)
        pid = os.getpid()
        self.workdir = tempfile.mkdtemp(prefix=f"{prefix}-{pid}-{n}-",
                                        dir=parent or os.environ.get("TEST_TMPDIR"))
        self._tokens = [cleanup.register(f"work directory {self.workdir}",
                                         lambda: shutil.rmtree(self.workdir, True))]
        self.volume = os.path.join(self.workdir, "volume")
        os.mkdir(self.volume)
        self._views = {}
        subnet = 1 + (pid + n) % 250
        self.procs = []
        self.a = Host("a", f"dwh-{pid}-{n}-a", f"10.77.{subnet}.1", self.workdir,
                      self.procs.append)
        self.b = Host("b", f"dwh-{pid}-{n}-b", f"10.77.{subnet}.2", self.workdir,
                      self.procs.append)
        self.cuts = Cuts(self)
        self._routes = {}
        try:
            _reap_stale_namespaces()
            if volume == "fuse":
                self._mount_views()
            elif volume == "lun":
                self._attach_lun()
            self._create()
        except BaseException:
            self.close()
            raise

    def volume_of(self, name):
        """The volume's path as host `name` sees it."""
        return self._views.get(name, self.volume)

    def _mount_views(self):
        if not shutil.which("bindfs"):
            raise RuntimeError("volume='fuse' needs bindfs (apt-get install bindfs)")
        for name in ("a", "b"):
            view = os.path.join(self.workdir, f"volume-{name}")
            os.mkdir(view)
            run(["bindfs", self.volume, view])
            self._tokens.append(cleanup.register(f"FUSE view {view}",
                                                 lambda v=view: _unmount(v)))
            self._views[name] = view

    def _attach_lun(self, size=LUN_BYTES):
        from .shim import cli_path  # pylint: disable=import-outside-toplevel
        image = os.path.join(self.workdir, "lun.img")
        with open(image, "wb") as f:
            f.truncate(size)
        run([cli_path(), "format", image])
        # What a tool run outside both hosts (diskwire status) opens: the
        # image itself, read O_DIRECT like the devices.
        self.volume = image
        for name in ("a", "b"):
            dev = run(["losetup", "-f", "--show", image]).stdout.strip()
            self._tokens.append(cleanup.register(
                f"loop device {dev}",
                lambda d=dev: run(["losetup", "-d", d], check=False)))
            self._views[name] = dev

    def host(self, name):
        return {"a": self.a, "b": self.b}[name]

    def other(self, name):
        return self.b if name == "a" else self.a

    def path(self, name):
        """A path in the work directory (removed on close)."""
        return os.path.join(self.workdir, name)

    def _create(self):
        for host in (self.a, self.b):
            run(["ip", "netns", "add", host.ns])
            self._tokens.append(cleanup.register(
                f"namespace {host.ns}", lambda ns=host.ns: delete_namespace(ns)))
            host.ip("link", "set", "lo", "up")
        self.a.ip("link", "add", LINK, "type", "veth", "peer", "name", LINK,
                  "netns", self.b.ns)
        for host in (self.a, self.b):
            host.ip("addr", "add", f"{host.addr}/24", "dev", LINK)
            host.ip("link", "set", LINK, "up")
        for host in (self.a, self.b):  # Both ends up: the routes as they should be.
            self._routes[host.name] = self._route_set(host)

    def link_up(self, side):
        """Brings `side`'s end of the link up and restores its routes (taking a
        veth down deletes them)."""
        host = self.host(side)
        host.ip("link", "set", LINK, "up")
        for route in self._routes[side] - self._route_set(host):
            host.ip("route", "replace", *route.split(), check=False)

    @staticmethod
    def _route_set(host):
        # "linkdown" is a state flag, not part of the route.
        return {" ".join(w for w in line.split() if w != "linkdown")
                for line in host.ip("route", "show").stdout.splitlines() if line.strip()}

    def link_down(self, side):
        self.host(side).ip("link", "set", LINK, "down")

    def close(self):
        """Kills processes in the namespaces, deletes them, removes the work
        directory. Idempotent."""
        for proc in reversed(self.procs):
            proc.kill()
        for token in reversed(self._tokens):
            cleanup.run(token)
        self._tokens = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def lun_available():
    """Why loop devices cannot be attached here, or None when they can."""
    if os.geteuid() != 0:
        return "attaching loop devices needs root"
    if not shutil.which("losetup"):
        return "losetup is not installed (apt-get install mount)"
    if not os.path.exists("/dev/loop-control"):
        return "this kernel has no loop devices (/dev/loop-control)"
    return None


def _unmount(path):
    if run(["umount", path], check=False).returncode != 0:
        run(["umount", "-l", path], check=False)  # Busy: detach it lazily.


def namespace_pids(ns):
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split()]


def delete_namespace(ns):
    """Kills every process left in `ns`, then deletes it."""
    for signum in (15, 9):
        for pid in namespace_pids(ns):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        if not namespace_pids(ns):
            break
        try:  # Give SIGTERM a moment: await the condition, do not sleep.
            wait_for(lambda: not namespace_pids(ns), 2.0, f"processes of {ns} to exit")
        except WaitTimeout:
            pass
    run(["ip", "netns", "del", ns], check=False)


def own_namespaces():
    """The harness namespaces of this process that still exist."""
    return [ns for ns in list_namespaces() if ns.startswith(f"dwh-{os.getpid()}-")]


def list_namespaces():
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _reap_stale_namespaces():
    """Deletes harness namespaces whose creating process no longer exists."""
    for ns in list_namespaces():
        match = _NS_PATTERN.match(ns)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # Its owner is alive (maybe another test run): leave it.
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        delete_namespace(ns)
