#!/usr/bin/env bash
# Healthy-path cost of the UDP relay (issue 11), on loopback: sockperf UDP
# ping-pong (64 B; p50, p99 of the half round trip) and sockperf UDP
# throughput (64 B messages, messages/s received), without the preload and
# with it selecting the port (DISKWIRE_SELECT=udp:PORT), in alternating runs;
# medians and ratios. Then DISKWIRE_MODE=storage: every datagram over the
# volume, to show that path's latency. A benchmark, not a test.
#
# Usage: bench/udp_bench.sh [-n RUNS] [-t SECONDS]     (defaults 3 and 3)
# Env:   DW_SHIM=path/libdiskwire.so (else built with bazel)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
secs=3
while getopts "n:t:" opt; do
  case "$opt" in
    n) runs="$OPTARG" ;;
    t) secs="$OPTARG" ;;
    *) echo "usage: $0 [-n RUNS] [-t SECONDS]" >&2; exit 2 ;;
  esac
done
command -v sockperf >/dev/null || { echo "udp_bench: needs sockperf (scripts/setup)" >&2; exit 2; }

shim="${DW_SHIM:-}"
if [ -z "$shim" ]; then
  bazel build //shim:libdiskwire.so >/dev/null 2>&1 ||
    { echo "udp_bench: bazel build //shim:libdiskwire.so failed" >&2; exit 1; }
  shim="$(bazel info bazel-bin 2>/dev/null)/shim/libdiskwire.so"
fi
shim="$(realpath "$shim")"
work="$(mktemp -d /tmp/dw-udp-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/volume"
port=$((30000 + ($$ % 1000) * 20))

with_mode() {  # with_mode base|shim|storage NODE PORT CMD...
  local mode="$1" node="$2" p="$3"
  shift 3
  case "$mode" in
    base) env -u LD_PRELOAD "$@" ;;
    *) env LD_PRELOAD="$shim" DISKWIRE_VOLUME="$work/volume" DISKWIRE_SELECT="udp:$p" \
         DISKWIRE_NODE="$node" DISKWIRE_LOG="$work/diskwire.log" \
         DISKWIRE_MODE="$([ "$mode" = storage ] && echo storage || echo failover)" "$@" ;;
  esac
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# sockperf_run MODE PORT pp|tp: "p50 p99" (us) for pp, "msgs/s" for tp.
sockperf_run() {
  local mode="$1" p="$2" kind="$3" server out
  with_mode "$mode" bench-b "$p" timeout $((secs + 30)) \
    sockperf sr -i 127.0.0.1 -p "$p" >/dev/null 2>&1 &
  server=$!
  sleep "$([ "$mode" = base ] && echo 0.3 || echo 1.5)"  # advertised
  out="$(with_mode "$mode" bench-a "$p" timeout $((secs + 20)) \
    sockperf "$kind" -i 127.0.0.1 -p "$p" -m 64 -t "$secs" 2>&1)" || true
  stop "$server"
  if [ "$kind" = pp ]; then
    awk '/percentile 50.000 =/ {p50=$NF} /percentile 99.000 =/ {p99=$NF}
         END {if (p50 == "" || p99 == "") print "fail fail"; else print p50, p99}' <<<"$out"
  else
    awk '/Summary: Message Rate is/ {for (i=1;i<=NF;i++) if ($i=="is") r=$(i+1)}
         END {if (r == "") print "fail"; else print r}' <<<"$out"
  fi
}

echo "loopback, $runs alternating runs per mode, $secs s each (sockperf UDP, 64 B)"
declare -a base50 base99 shim50 shim99 basetp shimtp
for ((i = 0; i < runs; i++)); do
  order=(base shim)
  ((i % 2)) && order=(shim base)
  for mode in "${order[@]}"; do
    read -r l50 l99 <<<"$(sockperf_run "$mode" $((port + 2 * i)) pp)"
    tp="$(sockperf_run "$mode" $((port + 2 * i + 1)) tp)"
    printf '  run %d %-5s ping-pong p50 %8s us  p99 %8s us   throughput %10s msg/s\n' \
      "$i" "$mode" "$l50" "$l99" "$tp"
    if [ "$mode" = base ]; then base50+=("$l50"); base99+=("$l99"); basetp+=("$tp")
    else shim50+=("$l50"); shim99+=("$l99"); shimtp+=("$tp"); fi
  done
done
read -r s50 s99 <<<"$(sockperf_run storage $((port + 2 * runs)) pp)"
printf '  storage mode (every datagram over the volume): ping-pong p50 %s us  p99 %s us\n' "$s50" "$s99"

python3 - "${base50[*]}" "${shim50[*]}" "${base99[*]}" "${shim99[*]}" "${basetp[*]}" "${shimtp[*]}" <<'PY'
import statistics, sys
def med(text):
    v = [float(x) for x in text.split() if x != "fail"]
    return statistics.median(v) if v else float("nan")
b50, s50, b99, s99, btp, stp = (med(a) for a in sys.argv[1:7])
print(f"{'median':24} {'base':>10} {'shim':>10} {'ratio':>7}   target")
print(f"{'UDP ping-pong p50 us':24} {b50:10.3f} {s50:10.3f} {s50 / b50:7.3f}   <= 1.05")
print(f"{'UDP ping-pong p99 us':24} {b99:10.3f} {s99:10.3f} {s99 / b99:7.3f}   <= 1.05")
print(f"{'UDP throughput msg/s':24} {btp:10.0f} {stp:10.0f} {stp / btp:7.3f}   >= 0.95")
PY
