#!/usr/bin/env bash
# Healthy-path overhead of the diskwire shim (DESIGN §6), on loopback:
#   iperf3 bulk throughput (one and four parallel streams) and sockperf TCP
#   ping-pong latency (p50, p99) with 64-byte and 16 KiB messages, and the
#   CPU both iperf3 ends spend per GB carried,
#   without and with the preload on the selected sockets, in alternating runs
#   (ABBA order), printed side by side with ratios; then DISKWIRE_MODE=storage
#   (every byte over the volume) when the shim supports it.
# A benchmark, not a test: it prints figures and fails only when a tool fails.
#
# Usage: bench/shim_bench.sh [-n RUNS] [-t SECONDS] [-c CPUS]   (defaults 3, 3: ~3 min)
#   -c CPUS  runs both ends under `taskset -c CPUS` in every mode. On a machine
#            of two shared vCPUs, where the scheduler puts the two ends decides
#            the figure more than the shim does (four iperf3 streams unpinned
#            land between 12 and 26 Gbit/s from run to run, with or without
#            it); `-c 0` puts both on one CPU, which gives steady figures.
# Env:   DW_SHIM=path/libdiskwire.so (else built with bazel $DW_BAZEL_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
secs=3
cpus=""
while getopts "n:t:c:" opt; do
  case "$opt" in
    n) runs="$OPTARG" ;;
    t) secs="$OPTARG" ;;
    c) cpus="$OPTARG" ;;
    *) echo "usage: $0 [-n RUNS] [-t SECONDS] [-c CPUS]" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ && "$secs" =~ ^[1-9][0-9]*$ ]] ||
  { echo "shim_bench: -n and -t take positive integers" >&2; exit 2; }
pin=()
if [ -n "$cpus" ]; then
  taskset -c "$cpus" true 2>/dev/null ||
    { echo "shim_bench: -c $cpus: taskset cannot run on those CPUs" >&2; exit 2; }
  pin=(taskset -c "$cpus")
fi
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

# Runs "$@" with the preload for mode base|shim|storage and node $node, in
# place of the calling (sub)shell: `with_mode ... &` leaves $! naming the
# program itself, which `stop` then ends.
with_mode() {
  local mode="$1" node="$2" port="$3"
  shift 3
  case "$mode" in
    base) exec env -u LD_PRELOAD "${pin[@]}" "$@" ;;
    shim | storage)
      exec env LD_PRELOAD="$shim" DISKWIRE_VOLUME="$work/volume" DISKWIRE_SELECT="$port" \
        DISKWIRE_NODE="$node" DISKWIRE_LOG="$work/diskwire.log" \
        DISKWIRE_MODE="$([ "$mode" = storage ] && echo storage || echo failover)" \
        "${pin[@]}" "$@" ;;
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

# iperf_run MODE PORT STREAMS: prints "Gbit/s cpu": the throughput, and the CPU
# seconds both ends spent per GB (iperf3's own getrusage figures): the cost
# that bounds the throughput on a machine whose cores are busy, and steadier
# than the throughput on a shared one. "fail fail" when iperf3 failed.
iperf_run() {
  local mode="$1" port="$2" streams="$3" server out
  # Servers are bounded by `timeout`, so an interrupted run leaves none behind.
  with_mode "$mode" bench-b "$port" timeout $((secs + 30)) \
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  if ! wait_listen "$port"; then stop "$server"; echo fail; return; fi
  out="$(with_mode "$mode" bench-a "$port" timeout $((secs + 20)) \
    iperf3 -c 127.0.0.1 -p "$port" -P "$streams" -t "$secs" -J 2>/dev/null)" || true
  stop "$server"
  python3 -c 'import json,sys
try:
  end = json.load(sys.stdin)["end"]
  got, cpu = end["sum_received"], end["cpu_utilization_percent"]
  cpu_s = (cpu["host_total"] + cpu["remote_total"]) / 100 * got["seconds"]
  print("%.2f %.3f" % (got["bits_per_second"] / 1e9, cpu_s / (got["bytes"] / 1e9)))
except Exception: print("fail fail")' <<<"$out"
}

sockperf_run() {  # sockperf_run MODE PORT SIZE: prints "p50 p99" in us (half round trip) or "fail fail".
  local mode="$1" port="$2" size="$3" server out
  with_mode "$mode" bench-b "$port" timeout $((secs + 30)) \
    sockperf sr --tcp -i 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  server=$!
  if ! wait_listen "$port"; then stop "$server"; echo "fail fail"; return; fi
  out="$(with_mode "$mode" bench-a "$port" timeout $((secs + 20)) \
    sockperf pp --tcp -i 127.0.0.1 -p "$port" -m "$size" -t "$secs" 2>&1)" || true
  stop "$server"
  if ! grep -q "percentile 99.000 =" <<<"$out"; then
    echo "  sockperf ($mode, $size B) failed; its last lines:" >&2
    tail -n 3 <<<"$out" | sed 's/^/    /' >&2
  fi
  awk '/percentile 50.000 =/ {p50=$NF} /percentile 99.000 =/ {p99=$NF}
       END {if (p50 == "" || p99 == "") print "fail fail"; else print p50, p99}' <<<"$out"
}

# One run of every measure in MODE, on ports $port..$port+3:
# "iperf1 iperf4 p50(64) p99(64) p50(16k) p99(16k) cpu1 cpu4".
measure() {
  local mode="$1" t1 t4 c1 c4 a50 a99 b50 b99
  read -r t1 c1 <<<"$(iperf_run "$mode" "$port" 1)"
  read -r t4 c4 <<<"$(iperf_run "$mode" $((port + 1)) 4)"
  read -r a50 a99 <<<"$(sockperf_run "$mode" $((port + 2)) 64)"
  read -r b50 b99 <<<"$(sockperf_run "$mode" $((port + 3)) 16384)"
  echo "$t1 $t4 $a50 $a99 $b50 $b99 $c1 $c4"
}

declare -A results
echo "shim: $shim"
echo "loopback, $runs alternating runs per mode, $secs s each${cpus:+, both ends on CPUs $cpus}:" \
  "iperf3 bulk (1 and 4 streams); sockperf ping-pong (64 B and 16 KiB)"
printf '  %-12s %9s %9s %9s %9s %9s %9s %9s %9s\n' "" "iperf3x1" "iperf3x4" "64B p50" \
  "64B p99" "16K p50" "16K p99" "x1 CPU/GB" "x4 CPU/GB"
for ((i = 0; i < runs; i++)); do
  if ((i % 2 == 0)); then order="base shim"; else order="shim base"; fi
  for mode in $order; do
    port=$((port + 4))  # not inside $(...): that would be a subshell's copy
    line="$(measure "$mode")"
    results[$mode]+="$line;"
    read -r -a f <<<"$line"
    printf '  run %d %-6s %9s %9s %9s %9s %9s %9s %9s %9s\n' $((i + 1)) "$mode" "${f[@]}"
  done
done
port=$((port + 4))
results[storage]="$(measure storage);"
read -r -a f <<<"${results[storage]%;}"
printf '  run 1 %-6s %9s %9s %9s %9s %9s %9s %9s %9s\n' storage "${f[@]}"

# A ratio near 1 means nothing if the shim did not carry the sockets: show
# what the shim logged.
if [ -s "$work/diskwire.log" ]; then
  echo "diskwire log ($(wc -l <"$work/diskwire.log") lines), last lines:"
  tail -n 5 "$work/diskwire.log" | sed 's/^/  /'
else
  echo "diskwire log: empty (is the shim active on the selected sockets?)"
fi

python3 - "${results[base]}" "${results[shim]}" "${results[storage]}" <<'PY'
import statistics, sys
names = ["iperf3 1 stream Gbit/s", "iperf3 4 streams Gbit/s", "sockperf 64 B p50 us",
         "sockperf 64 B p99 us", "sockperf 16 KiB p50 us", "sockperf 16 KiB p99 us",
         "iperf3 1 stream CPU s/GB", "iperf3 4 streams CPU s/GB"]
targets = [">= 0.97", ">= 0.97", "<= 1.05", "<= 1.05", "<= 1.05", "<= 1.05",
           "(the cost)", "(the cost)"]
def columns(text):
    runs = [r.split() for r in text.split(";") if r.strip()]
    cols = []
    for k in range(len(names)):
        vals = [float(r[k]) for r in runs if len(r) > k and r[k] != "fail"]
        cols.append(statistics.median(vals) if vals else None)
    return cols
base, shim, storage = (columns(t) for t in sys.argv[1:4])
def fmt(v): return "     n/a" if v is None else f"{v:8.2f}"
def ratio(a, b): return "   n/a" if a is None or b is None or b == 0 else f"{a / b:6.3f}"
print(f"\n{'median':26} {'without':>8} {'with shim':>9} {'ratio':>6}  target")
for k, name in enumerate(names):
    print(f"{name:26} {fmt(base[k])} {fmt(shim[k])} {ratio(shim[k], base[k])}   {targets[k]}")
print("storage mode (1 run), the volume path:")
for k, name in enumerate(names):
    print(f"  {name:24} {fmt(base[k])} {fmt(storage[k])} {ratio(storage[k], base[k])}")
PY
