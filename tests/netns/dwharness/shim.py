"""The diskwire preload for processes run by the harness.

The shim is found, in order, at $DW_SHIM (an absolute path; "off" runs the
programs without any preload, to show that a test fails without diskwire),
in Bazel's runfiles (shim/libdiskwire.so, a data dependency of the test), or
in the source tree's bazel-bin. The harness's own knobs are named DW_*, not
DISKWIRE_*, because the shim rejects unknown DISKWIRE_* variables.
"""

import os

from .wait import file_size

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
_RELATIVE = os.path.join("shim", "libdiskwire.so")


def _runfile_candidates(override, relative):
    candidates = [override] if override else []
    srcdir = os.environ.get("TEST_SRCDIR")
    if srcdir:
        candidates.append(os.path.join(srcdir, os.environ.get("TEST_WORKSPACE", "diskwire"),
                                       relative))
    candidates.append(os.path.join(_REPO, "bazel-bin", relative))
    return candidates


def cli_path():
    """Absolute path of the diskwire command: $DW_CLI, runfiles, or bazel-bin."""
    candidates = _runfile_candidates(os.environ.get("DW_CLI"), os.path.join("cli", "diskwire"))
    for path in candidates:
        if path and os.path.isfile(path):
            return os.path.realpath(path)
    raise FileNotFoundError(f"diskwire not found (looked in {', '.join(candidates)}); "
                            "build it with `bazel build //cli:diskwire` or set DW_CLI")


def shim_path():
    """Absolute path of libdiskwire.so, "" when DW_SHIM=off; raises when absent."""
    override = os.environ.get("DW_SHIM")
    if override == "off":
        return ""
    candidates = _runfile_candidates(override, _RELATIVE)
    for path in candidates:
        if path and os.path.isfile(path):
            return os.path.realpath(path)
    raise FileNotFoundError("libdiskwire.so not found (looked in "
                            f"{', '.join(p for p in candidates if p)}); build it with "
                            "`bazel build //shim:libdiskwire.so` or set DW_SHIM")


class Diskwire:
    """diskwire settings for the two hosts of a TwoHosts.

    Each host is its own node ("a", "b") on the shared volume, and logs to
    <workdir>/diskwire-<node>.log. `settings` are extra DISKWIRE_* variables
    without the prefix, e.g. Diskwire(net, 5001, MODE="storage").
    """

    def __init__(self, net, select, **settings):
        self.net = net
        self.preload = shim_path()
        self.settings = {"SELECT": str(select)}
        self.settings.update({k: str(v) for k, v in settings.items()})

    def settings_without_select(self):
        """The extra settings given at construction (to build a twin)."""
        return {k: v for k, v in self.settings.items() if k != "SELECT"}

    def flags(self, node, **overrides):
        """`--shim PATH --flag value ...`: the same settings as env(), given as
        the flags of `diskwire run` and `diskwire enable`."""
        argv = ["--shim", self.preload or shim_path()]
        for key, value in self.env(node, **overrides).items():
            if key.startswith("DISKWIRE_"):
                argv += ["--" + key[len("DISKWIRE_"):].lower().replace("_", "-"), value]
        return argv

    def run_argv(self, node, **overrides):
        """`diskwire run --flag value ... --` for host `node`."""
        return [cli_path(), "run"] + self.flags(node, **overrides) + ["--"]

    def log_path(self, node):
        return self.net.path(f"diskwire-{node}.log")

    def env(self, node, **overrides):
        """Environment entries for a process on host `node`."""
        settings = dict(self.settings, VOLUME=self.net.volume_of(node), NODE=node,
                        LOG=self.log_path(node))
        settings.update({k: str(v) for k, v in overrides.items()})
        env = {f"DISKWIRE_{k}": v for k, v in settings.items()}
        if self.preload:
            env["LD_PRELOAD"] = self.preload
        return env

    def logs(self, limit=1500, warnings=0):
        """The tail of both hosts' diskwire logs, for failure messages; with
        `warnings`, each host's last `warnings` lines that are not INFO
        before its tail (a long run's INFO lines push them out of any
        tail)."""
        parts = []
        for node in ("a", "b"):
            path = self.log_path(node)
            if not file_size(path):
                continue
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            notable = [line for line in lines if " INFO: " not in line]
            if warnings and notable:
                parts.append(f"--- diskwire log {node}: the last {warnings} of "
                             f"{len(notable)} lines that are not INFO ---\n"
                             + "\n".join(notable[-warnings:]))
            tail = "\n".join(lines)[-limit:]
            parts.append(f"--- diskwire log {node} ---\n" + tail)
        return "\n".join(parts) or "(no diskwire log)"
