#!/usr/bin/env bash
# Stock programs under LD_PRELOAD=libdiskwire.so with no DISKWIRE_* configuration
# must behave exactly as without it: python3 -m http.server serves a page, curl
# and nc (as client) fetch it, nc listens and receives. Waits are on the
# programs' own announcements, read from FIFOs, never on timers.
set -euo pipefail

lib="${TEST_SRCDIR:-.}/diskwire/shim/libdiskwire.so"
[[ -f "$lib" ]] || { echo "missing $lib" >&2; exit 1; }
for v in $(env | grep -o '^DISKWIRE_[A-Z_]*' || true); do unset "$v"; done

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

echo "diskwire page" > "$dir/index.html"

# python3 -m http.server, preloaded; its first stdout line names the port.
mkfifo "$dir/server.out"
(cd "$dir" && LD_PRELOAD="$lib" exec python3 -u -m http.server \
  --bind 127.0.0.1 0 > "$dir/server.out" 2> "$dir/server.err") &
pids+=($!)
exec 3< "$dir/server.out"
IFS= read -r -t 20 -u 3 line || fail "http.server did not start: $(cat "$dir/server.err")"
port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' <<< "$line")
[[ -n "$port" ]] || fail "no port in: $line"
grep -q libdiskwire.so "/proc/${pids[0]}/maps" || fail "server is not preloaded"

# curl, with and without the preload: the same page.
plain=$(curl -sS "http://127.0.0.1:$port/index.html")
preloaded=$(LD_PRELOAD="$lib" curl -sS "http://127.0.0.1:$port/index.html")
[[ "$plain" == "diskwire page" ]] || fail "curl without preload: $plain"
[[ "$preloaded" == "$plain" ]] || fail "curl under preload: $preloaded"

# nc as an HTTP client, preloaded.
reply=$(printf 'GET /index.html HTTP/1.0\r\n\r\n' |
  LD_PRELOAD="$lib" nc -N 127.0.0.1 "$port")
grep -q '^HTTP/1.0 200' <<< "$reply" || fail "nc client reply: $reply"
grep -q '^diskwire page' <<< "$reply" || fail "nc client body: $reply"

# nc as a listener, preloaded; "Listening on HOST PORT" goes to stderr.
mkfifo "$dir/nc.err"
LD_PRELOAD="$lib" nc -lv 127.0.0.1 0 > "$dir/received" 2> "$dir/nc.err" &
listener=$!
pids+=($listener)
exec 4< "$dir/nc.err"
IFS= read -r -t 20 -u 4 line || fail "nc -l did not start"
nc_port=$(awk '{print $NF}' <<< "$line")
head -c 300000 /dev/urandom > "$dir/sent"
LD_PRELOAD="$lib" nc -N 127.0.0.1 "$nc_port" < "$dir/sent"
wait "$listener" || fail "nc -l exited with $?"
cmp -s "$dir/sent" "$dir/received" || fail "nc listener received other bytes"

# The server kept working through all of it and logged the requests.
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
grep -c '"GET /index.html HTTP/1' "$dir/server.err" | grep -qx 3 ||
  fail "server log: $(cat "$dir/server.err")"
echo PASS
