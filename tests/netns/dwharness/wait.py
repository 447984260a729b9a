"""Waiting primitives: await a condition with a deadline, never a bare sleep.

Each primitive polls a cheap predicate (a file size, a process status, an `ss`
listing) every `interval` seconds until it holds or the deadline passes, and
then raises WaitTimeout naming what it waited for and the last value it saw.
WaitTimeout is an AssertionError, so unittest reports it as a test failure.
"""

import os
import subprocess
import time

DEFAULT_INTERVAL = 0.05


class WaitTimeout(AssertionError):
    """A condition did not hold before its deadline."""


def wait_for(predicate, timeout, what, interval=DEFAULT_INTERVAL, last=None):
    """Returns the first truthy value of predicate() within `timeout` seconds.

    `last`, when given, is called on timeout to describe the state seen.
    Raises WaitTimeout otherwise.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen = f"; last seen: {last()}" if last else ""
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}{seen}")
        time.sleep(min(interval, remaining))


def file_size(path):
    """Size of `path` in bytes, 0 when it does not exist yet."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def wait_file_size(path, at_least, timeout):
    """Waits until `path` holds at least `at_least` bytes; returns its size."""
    return wait_for(lambda: file_size(path) >= at_least and file_size(path),
                    timeout, f"{path} to reach {at_least} bytes",
                    last=lambda: f"{file_size(path)} bytes")


def wait_exit(proc, timeout):
    """Waits for a subprocess.Popen (or Proc) to exit; returns its status."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        name = getattr(proc, "name", None) or getattr(proc, "args", "process")
        raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {name} "
                          "to exit") from None


def still_running_after(proc, duration):
    """True when `proc` has not exited after `duration` seconds (a bound that a
    stalled process must outlive); False as soon as it exits."""
    try:
        proc.wait(timeout=duration)
        return False
    except subprocess.TimeoutExpired:
        return True


def wait_stable(read, window, timeout, what):
    """Waits until read() returns the same value for `window` seconds; returns it.

    Used to prove a stall: progress that stops and stays stopped.
    """
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while True:
        now = time.monotonic()
        if now - since >= window:
            return value
        if now >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what} "
                              f"to stay unchanged for {window:.1f}s; last: {value}")
        time.sleep(DEFAULT_INTERVAL)
        current = read()
        if current != value:
            value, since = current, time.monotonic()
