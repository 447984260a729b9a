"""What the harness needs from the machine, and the skip message when absent."""

import os
import shutil
import subprocess
import sys

TOOLS = ("ip", "iptables", "nc", "ss")


def missing_requirement():
    """None when namespaces can be made here, else why not (one line)."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in TOOLS:
        if not shutil.which(tool):
            return f"needs the '{tool}' command (scripts/setup installs it)"
    probe = f"dwh-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        rules = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-w", "10",
                                "-L", "INPUT", "-n"], capture_output=True, text=True)
        if rules.returncode != 0:
            return f"iptables does not work in a namespace: {rules.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def skip_unless_netns():
    """Exits 0 with a clear SKIPPED line when namespaces cannot be made.

    Bazel has no skipped status: the test shows as passed, and its log says
    SKIPPED and why.
    """
    reason = missing_requirement()
    if reason:
        print(f"SKIPPED: {reason} (CI runs as root)", flush=True)
        sys.exit(0)
