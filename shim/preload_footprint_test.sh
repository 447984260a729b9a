#!/usr/bin/env bash
# What preloading diskwire loads into a process (issue 15, process start):
# libdiskwire.so itself needs nothing but libc; a process without a
# DISKWIRE_* variable, or one configured that never makes a socket, maps no
# engine (no abseil, no libstdc++ on its account); a configured process that
# makes a socket loads libdiskwire_engine.so from beside libdiskwire.so.
set -euo pipefail

lib="${TEST_SRCDIR:-.}/diskwire/shim/libdiskwire.so"
[[ -f "$lib" ]] || { echo "missing $lib" >&2; exit 1; }
for v in $(env | grep -o '^DISKWIRE_[A-Z_]*' || true); do unset "$v"; done
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/vol"

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
[[ "$needed" == "ld-linux-x86-64.so.2 libc.so.6 " ]] || fail "libdiskwire.so needs: $needed"

plain=$(LD_PRELOAD="$lib" sh -c 'cat /proc/$$/maps')
grep -q libdiskwire.so <<<"$plain" || fail "not preloaded"
grep -qE 'libdiskwire_engine|libabsl|libstdc\+\+' <<<"$plain" &&
  fail "an unconfigured process maps the engine: $(grep -E 'engine|absl|stdc' <<<"$plain" | head -3)"

configured=$(LD_PRELOAD="$lib" DISKWIRE_VOLUME="$dir/vol" DISKWIRE_SELECT=5001 sh -c 'cat /proc/$$/maps')
grep -qE 'libdiskwire_engine|libabsl' <<<"$configured" &&
  fail "a configured process without sockets maps the engine"

# python3 makes a socket: the engine comes in, from beside the preload library.
with_socket=$(LD_PRELOAD="$lib" DISKWIRE_VOLUME="$dir/vol" DISKWIRE_SELECT=5001 python3 -c '
import socket
s = socket.socket()
print(open("/proc/self/maps").read())' 2>"$dir/err") || fail "python3: $(cat "$dir/err")"
grep -q libdiskwire_engine.so <<<"$with_socket" ||
  fail "a configured process that made a socket has no engine: $(cat "$dir/err")"
# Without its engine beside it: a configured process stops (as with a bad
# configuration), or runs without diskwire when DISKWIRE_ON_ERROR says so.
mkdir "$dir/alone"
cp "$lib" "$dir/alone/libdiskwire.so"
status=0
LD_PRELOAD="$dir/alone/libdiskwire.so" DISKWIRE_VOLUME="$dir/vol" DISKWIRE_SELECT=5001 \
  python3 -c 'import socket; socket.socket()' 2>"$dir/err" || status=$?
[[ $status -eq 78 ]] || fail "no engine: exit $status, want 78: $(cat "$dir/err")"
grep -q "cannot load the engine ($dir/alone/libdiskwire_engine.so)" "$dir/err" ||
  fail "no engine: $(cat "$dir/err")"
LD_PRELOAD="$dir/alone/libdiskwire.so" DISKWIRE_VOLUME="$dir/vol" DISKWIRE_SELECT=5001 \
  DISKWIRE_ON_ERROR=passthrough python3 -c 'import socket; socket.socket()' 2>"$dir/err" ||
  fail "no engine, passthrough: $(cat "$dir/err")"
echo "PASS"
