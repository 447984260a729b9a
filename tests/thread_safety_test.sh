#!/usr/bin/env bash
# clang's thread-safety analysis over every C++ target (.bazelrc, config tsa):
# a member read or written without the lock its ABSL_GUARDED_BY names, a
# function called without the locks it requires, fails the build. Run by
# scripts/test beside `bazel test` (it needs bazel itself), counted there.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang++ >/dev/null; then
  echo "SKIPPED: clang++ is not installed (apt-get install clang)"
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if bazel build --config=tsa -k //core/... //storage/... //shim/... //cli/... >"$log" 2>&1; then
  echo "PASS: thread-safety analysis finds nothing"
  exit 0
fi
grep -E "error:" "$log" | sort -u | head -40
echo "FAIL: thread-safety analysis (bazel build --config=tsa //core/...)"
exit 1
