"""Process-wide cleanup registry.

Every resource the harness creates (network namespace, process, temporary
directory) registers an undo action here. The actions run last-in first-out,
each at most once: when its owner closes it, at interpreter exit (atexit), and
on SIGINT, SIGTERM or SIGHUP (Bazel sends SIGTERM on a test timeout). After a
signal the process still dies by that signal, so callers see the usual status.

Thread safety: register/run/cleanup_all may be called from any thread; the
signal handlers are installed from the main thread only.
"""

import atexit
import itertools
import os
import signal
import sys
import threading

_lock = threading.RLock()
_actions = {}  # token -> (description, fn), insertion ordered
_tokens = itertools.count(1)
_installed = False
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def register(description, fn):
    """Registers `fn` (no arguments) to undo a resource; returns a token."""
    install()
    with _lock:
        token = next(_tokens)
        _actions[token] = (description, fn)
        return token


def run(token):
    """Runs and forgets the action of `token`; a no-op when it already ran."""
    with _lock:
        entry = _actions.pop(token, None)
    if entry is not None:
        _call(*entry)


def pending():
    """Descriptions of the actions not yet run, oldest first."""
    with _lock:
        return [description for description, _ in _actions.values()]


def cleanup_all():
    """Runs every pending action, newest first. Errors are reported, not raised."""
    while True:
        with _lock:
            if not _actions:
                return
            token = next(reversed(_actions))
            entry = _actions.pop(token)
        _call(*entry)


def _call(description, fn):
    try:
        fn()
    except Exception as e:  # Cleanup must go on whatever one action does.
        print(f"dwharness: cleanup of {description} failed: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    del frame
    print(f"dwharness: signal {signal.Signals(signum).name}: cleaning up",
          file=sys.stderr)
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install():
    """Installs the atexit hook and signal handlers once (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for signum in _SIGNALS:
            # Keep an explicit "ignore" (e.g. nohup) as the caller set it.
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, _on_signal)
