#!/bin/bash
# Runs a Python test script from Bazel's runfiles with the system python3 and
# the harness package (tests/netns/dwharness) on PYTHONPATH.
# Bazel 4.2.3's own py_test stub needs a `python` on PATH, which Debian lacks.
#   run_py_test.sh <script relative to the workspace> [args...]
set -euo pipefail
root="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE:-diskwire}"
export PYTHONPATH="${root}/tests/netns${PYTHONPATH:+:${PYTHONPATH}}"
export PYTHONDONTWRITEBYTECODE=1
script="$1"
shift
exec python3 "${root}/${script}" "$@"
