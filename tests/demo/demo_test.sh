#!/bin/bash
# Runs scripts/demo twice from Bazel's runfiles: a small transfer that must
# end in "ok:" with exit status 0, then one interrupted with SIGINT once the
# transfer runs, which must end in "FAIL: interrupted" with status 130. After
# each: no namespace, process or volume of the run may be left.
set -uo pipefail
root="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE:-diskwire}"
if [[ $(id -u) != 0 ]]; then
  echo "SKIPPED: scripts/demo needs root (network namespaces)"
  exit 0
fi
export DW_SHIM="${root}/shim/libdiskwire.so" DW_CLI="${root}/cli/diskwire"
export PYTHONDONTWRITEBYTECODE=1
tmp="${TEST_TMPDIR:-/tmp}"
failures=0

fail() {
  echo "demo_test: $*"
  failures=$((failures + 1))
}

# Checks that the run whose output is in $1 left nothing behind.
check_clean() {
  local out="$1" ns volume e pid
  volume=$(sed -n 's/.*  volume: \(.*\)$/\1/p' "$out" | head -n1)
  [[ -n "$volume" ]] || fail "no 'volume:' line in the demo's output"
  for ns in $(sed -n 's/^hosts: a=\([^ ]*\) .* b=\([^ ]*\) .*/\1 \2/p' "$out"); do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
      fail "namespace $ns left behind"
    fi
  done
  if [[ -n "$volume" && -e "$volume" ]]; then
    fail "volume $volume left behind"
  fi
  # Processes of the run carry its volume in their environment.
  for e in /proc/[0-9]*/environ; do
    pid="${e#/proc/}"
    pid="${pid%/environ}"
    [[ "$pid" == "$$" ]] && continue
    if [[ -n "$volume" ]] && { tr '\0' '\n' <"$e"; } 2>/dev/null |
      grep -qx "DISKWIRE_VOLUME=${volume}"; then
      fail "process $pid ($(tr '\0' ' ' <"/proc/${pid}/cmdline")) left behind"
    fi
  done
}

# 1. A whole run.
out="${tmp}/demo_ok.out"
python3 "${root}/scripts/demo" --size 8 --rate 4 --timeout 60 >"$out" 2>&1
rc=$?
cat "$out"
last=$(tail -n1 "$out")
[[ $rc == 0 && "$last" == ok:* ]] || fail "exit status $rc, last line: $last"
check_clean "$out"

# 2. Interrupted while the transfer runs. Job control, so that the background
# job does not start with SIGINT ignored, as Ctrl-C would find it.
set -m
out="${tmp}/demo_int.out"
python3 "${root}/scripts/demo" --size 64 --rate 2 --timeout 120 >"$out" 2>&1 &
demo=$!
for ((i = 0; i < 300; i++)); do # up to 30 s for the first progress line
  grep -q " received " "$out" && break
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.1
done
grep -q " received " "$out" || fail "the interrupted run never showed progress"
kill -INT "$demo"
wait "$demo"
rc=$?
cat "$out"
last=$(tail -n1 "$out")
[[ $rc == 130 && "$last" == "FAIL: interrupted"* ]] ||
  fail "after SIGINT: exit status $rc, last line: $last"
check_clean "$out"

[[ $failures == 0 ]] && echo "demo_test: passed"
exit $((failures > 0))
