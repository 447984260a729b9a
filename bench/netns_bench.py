"""What the benchmarks that run stock programs between two network namespaces share."""

import os


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def cannot_run(harness):
    """None when the benchmark can run; else the exit status after saying why."""
    reason = harness.missing_requirement()
    if reason:
        print(f"SKIPPED: {reason}")
        return 0
    if not os.environ.get("DW_SHIM"):
        print("set DW_SHIM to the absolute path of libdiskwire.so")
        return 2
    return None
