"""Processes started by the harness, each in its own process group.

A Proc wraps subprocess.Popen: it keeps the process's stderr in a log file
for diagnostics and registers itself with the cleanup registry, so it is
killed (group SIGTERM, then SIGKILL) when the test ends however it ends.

Thread safety: a Proc may be waited on from one thread and killed from another.
"""

import os
import signal
import subprocess

from . import cleanup

# What a harness process inherits: the caller's environment without any
# diskwire setting, so nothing is preloaded unless a test asks for it.
_SCRUBBED_PREFIXES = ("DISKWIRE_",)
_SCRUBBED_NAMES = ("LD_PRELOAD",)


def clean_env(extra=None):
    """os.environ minus LD_PRELOAD and DISKWIRE_*, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUBBED_NAMES and not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(extra or {})
    return env


class Proc:
    """One process started by the harness."""

    def __init__(self, name, argv, *, env=None, stdin=None, stdout=None,
                 log_dir=None, cwd=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = os.path.join(log_dir, f"{name}.stderr") if log_dir else None
        stderr = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        try:
            self.popen = subprocess.Popen(
                self.argv, env=env if env is not None else clean_env(),
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=stderr, cwd=cwd, start_new_session=True)
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        self._token = cleanup.register(f"process {name} ({self.pid})",
                                       self._terminate)

    @property
    def pid(self):
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout=None):
        """subprocess.Popen.wait: the exit status, or TimeoutExpired."""
        return self.popen.wait(timeout=timeout)

    def signal(self, signum):
        """Sends `signum` to the process alone (not its group)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def kill(self):
        """Ends the process group (SIGTERM, then SIGKILL) and waits for it."""
        cleanup.run(self._token)

    def _terminate(self, grace=2.0):
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if self.popen.poll() is not None:
                break
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if self.popen.stdout:
            self.popen.stdout.close()

    def stderr_tail(self, limit=2000):
        """The last `limit` characters the process wrote to stderr."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return ""
        return data[-limit:].decode(errors="replace")

    def describe(self):
        status = self.popen.poll()
        state = "running" if status is None else f"exited {status}"
        tail = self.stderr_tail(600).strip()
        return f"{self.name} [{self.pid}] {state}" + (f"; stderr: {tail}" if tail else "")
