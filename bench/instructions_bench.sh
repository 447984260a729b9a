#!/usr/bin/env bash
# Instructions per round trip of the healthy path (issue 15): a loopback TCP
# ping-pong in one process (bench/tcp_pingpong_loop: send, receive, send back,
# receive), counted by valgrind's callgrind in user space, every thread
# included, without diskwire and with diskwire selecting the port:
# (Ir(N) - Ir(0)) / N for each, and the ratio. Steady whatever the machine
# does, unlike times on a shared 2-core machine.
#
# Usage: bench/instructions_bench.sh [-n ROUNDS] [-s SIZE]   (defaults 20000, 64)
# Env:   DW_SHIM=path/libdiskwire.so (else bazel-bin's)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=20000
size=64
while getopts "n:s:" opt; do
  case "$opt" in
    n) rounds="$OPTARG" ;;
    s) size="$OPTARG" ;;
    *) echo "usage: $0 [-n ROUNDS] [-s SIZE]" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "instructions_bench: needs valgrind" >&2; exit 2; }
bazel build //bench:tcp_pingpong_loop //shim:libdiskwire.so >/dev/null 2>&1 ||
  bazel build //bench:tcp_pingpong_loop //shim:libdiskwire.so
bin="$(bazel info bazel-bin 2>/dev/null)"
loop="$bin/bench/tcp_pingpong_loop"
shim="${DW_SHIM:-$bin/shim/libdiskwire.so}"
volume=$(mktemp -d)
trap 'rm -rf "$volume"' EXIT
port=$((30000 + RANDOM % 20000))

count() {  # rounds, then env assignments
  local n=$1
  shift
  env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$loop" "$port" "$n" "$size" \
    2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_round() {
  local zero full
  zero=$(count 0 "$@")
  full=$(count "$rounds" "$@")
  echo $(((full - zero) / rounds))
}
base=$(per_round -u LD_PRELOAD)
dw=$(per_round LD_PRELOAD="$shim" DISKWIRE_VOLUME="$volume" DISKWIRE_SELECT="$port")
echo "loopback TCP ping-pong, $size-byte messages, $rounds rounds (user-space instructions per round trip):"
printf '  without diskwire %8d\n  with diskwire    %8d   %.2fx\n' "$base" "$dw" \
  "$(echo "$dw / $base" | bc -l)"
