#!/usr/bin/env bash
# Healthy-path overhead of the diskwire shim (DESIGN §6), on loopback:
#   iperf3 bulk throughput and sockperf 64-byte TCP ping-pong latency (p50, p99),
#   without and with the preload on the selected sockets, in alternating runs
#   (ABBA order), printed side by side with ratios; then DISKWIRE_MODE=storage
#   (every byte over the volume) when the shim supports it.
# A benchmark, not a test: it prints figures and fails only when a tool fails.
#
# Usage: bench/shim_bench.sh [-n RUNS] [-t SECONDS]     (defaults 3 and 3: ~1 min)
# Env:   DW_SHIM=path/libdiskwire.so (else built with bazel $DW_BAZEL_FLAGS)
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
[[ "$runs" =~ ^[1-9][0-9]*$ && "$secs" =~ ^[1-9][0-9]*$ ]] ||
  { echo "shim_bench: -n and -t take positive integers" >&2; exit 2; }
for tool in iperf3 sockperf python3 ss; do
  command -v "$tool" >/dev/null || { echo "shim_bench: needs $tool (scripts/setup)" >&2; exit 2; }
done

shim="${DW_SHIM:-}"
if [ -z "$shim" ]; then
  read -r -a startup <<<"${DW_BAZEL_FLAGS:-}"
  bazel "${startup[@]}" build //shim:libdiskwire.so >/dev/null 2>&1 ||
    { echo "shim_bench: bazel build //shim:libdiskwire.so failed" >&2; exit 1; }
  shim="$(bazel "${startup[@]}" info bazel-bin 2>/dev/null)/shim/libdiskwire.so"
fi
shim="$(realpath "$shim")"

work="$(mktemp -d /tmp/dw-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
mkdir "$work/volume"

# A fresh port per run (no TIME_WAIT reuse), derived from our pid so that two
# benchmarks on one machine do not collide.
port=$((20000 + ($$ % 1000) * 40))

# Runs "$@" with the preload for mode base|shim|storage and node $node.
with_mode() {
  local mode="$1" node="$2" port="$3"
  shift 3
  case "$mode" in
    base) env -u LD_PRELOAD "$@" ;;
    shim | storage)
      env LD_PRELOAD="$shim" DISKWIRE_VOLUME="$work/volume" DISKWIRE_SELECT="$port" \
        DISKWIRE_NODE="$node" DISKWIRE_LOG="$work/diskwire.log" \
        DISKWIRE_MODE="$([ "$mode" = storage ] && echo storage || echo failover)" "$@" ;;
  esac
}

wait_listen() {  # Awaits a listener on port $1, at most 10 s.
  local deadline=$((SECONDS + 10))
  until ss -Htln "( sport = :$1 )" | grep -q .; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

iperf_run() {  # iperf_run MODE PORT: prints Gbit/s, or "fail".
  local mode="$1" port="$2" server out
  # Servers are bounded by `timeout`, so an interrupted run leaves none behind.
  with_mode "$mode" bench-b "$port" timeout $((secs + 30)) \
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  if ! wait_listen "$port"; then stop "$server"; echo fail; return; fi
  out="$(with_mode "$mode" bench-a "$port" timeout $((secs + 20)) \
    iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J 2>/dev/null)" || true
  stop "$server"
  python3 -c 'import json,sys
try: print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception: print("fail")' <<<"$out"
}

sockperf_run() {  # sockperf_run MODE PORT: prints "p50 p99" in us (half round trip) or "fail fail".
  local mode="$1" port="$2" server out
  with_mode "$mode" bench-b "$port" timeout $((secs + 30)) \
    sockperf sr --tcp -i 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  if ! wait_listen "$port"; then stop "$server"; echo "fail fail"; return; fi
  out="$(with_mode "$mode" bench-a "$port" timeout $((secs + 20)) \
    sockperf pp --tcp -i 127.0.0.1 -p "$port" -m 64 -t "$secs" 2>&1)" || true
  stop "$server"
  if ! grep -q "percentile 99.000 =" <<<"$out"; then
    echo "  sockperf ($mode) failed; its last lines:" >&2
    tail -n 3 <<<"$out" | sed 's/^/    /' >&2
  fi
  awk '/percentile 50.000 =/ {p50=$NF} /percentile 99.000 =/ {p99=$NF}
       END {if (p50 == "" || p99 == "") print "fail fail"; else print p50, p99}' <<<"$out"
}

declare -A tput p50 p99
echo "shim: $shim"
echo "loopback, $runs alternating runs per mode, $secs s each (iperf3 bulk; sockperf 64 B ping-pong)"
for ((i = 0; i < runs; i++)); do
  if ((i % 2 == 0)); then order="base shim"; else order="shim base"; fi
  for mode in $order; do
    port=$((port + 2))  # Not inside $(...): that would be a subshell's copy.
    t="$(iperf_run "$mode" "$port")"
    read -r l50 l99 <<<"$(sockperf_run "$mode" $((port + 1)))"
    tput[$mode]+="$t "
    p50[$mode]+="$l50 "
    p99[$mode]+="$l99 "
    printf '  run %d %-5s iperf3 %8s Gbit/s   sockperf p50 %8s us  p99 %8s us\n' \
      $((i + 1)) "$mode" "$t" "$l50" "$l99"
  done
done
port=$((port + 2))
t="$(iperf_run storage "$port")"
read -r l50 l99 <<<"$(sockperf_run storage $((port + 1)))"
tput[storage]="$t"
p50[storage]="$l50"
p99[storage]="$l99"
printf '  run 1 %-7s iperf3 %8s Gbit/s   sockperf p50 %8s us  p99 %8s us\n' storage "$t" "$l50" "$l99"

# A ratio near 1 means nothing if the shim did not carry the sockets: show
# what the shim logged.
if [ -s "$work/diskwire.log" ]; then
  echo "diskwire log ($(wc -l <"$work/diskwire.log") lines), last lines:"
  tail -n 5 "$work/diskwire.log" | sed 's/^/  /'
else
  echo "diskwire log: empty (is the shim active on the selected sockets?)"
fi

python3 - "${tput[base]}" "${tput[shim]}" "${p50[base]}" "${p50[shim]}" \
  "${p99[base]}" "${p99[shim]}" "${tput[storage]}" "${p50[storage]}" "${p99[storage]}" <<'PY'
import statistics, sys
def med(text):
    vals = [float(v) for v in text.split() if v != "fail"]
    return statistics.median(vals) if vals else None
(tb, ts, ab, as_, bb, bs, st, s50, s99) = map(med, sys.argv[1:])
def fmt(v): return "     n/a" if v is None else f"{v:8.2f}"
def ratio(a, b): return "   n/a" if a is None or b is None or b == 0 else f"{a / b:6.3f}"
print(f"\n{'median':24} {'without':>8} {'with shim':>9} {'ratio':>6}  target")
print(f"{'iperf3 Gbit/s':24} {fmt(tb)} {fmt(ts)} {ratio(ts, tb)}   >= 0.97")
print(f"{'sockperf p50 us':24} {fmt(ab)} {fmt(as_)} {ratio(as_, ab)}   <= 1.05")
print(f"{'sockperf p99 us':24} {fmt(bb)} {fmt(bs)} {ratio(bs, bb)}   <= 1.05")
print(f"{'storage mode (1 run):':24}")
print(f"{'  iperf3 Gbit/s':24} {fmt(tb)} {fmt(st)} {ratio(st, tb)}   (volume path)")
print(f"{'  sockperf p50 us':24} {fmt(ab)} {fmt(s50)} {ratio(s50, ab)}   p50 <= 200 us")
print(f"{'  sockperf p99 us':24} {fmt(bb)} {fmt(s99)} {ratio(s99, bb)}   p99 <= 2000 us")
PY
