#!/usr/bin/env bash
# The Debian packages, as an operator gets them (issue 16): built from this
# tree with scripts/package, checked by lintian (no error), installed with
# dpkg -i into a fresh root, and used from there: --version, the man pages,
# the bash completion, and a short `diskwire run` transfer over the volume
# with the installed library. Also holds docs/CONFIG.md to the variables and
# defaults of `diskwire --help` (the one source of the man pages).
# Run by scripts/test after `bazel test //...` (it builds with bazel itself);
# needs root for dpkg (CI is root). Prints PASS or FAIL lines, exits non-zero
# on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: package_test needs root (dpkg --root, as CI runs)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() {  # description, then a command that must succeed
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then
    echo "PASS: $what"
  else
    echo "FAIL: $what"
    sed 's/^/    /' "$tmp/out" | tail -20
    failures=$((failures + 1))
  fi
}

check "scripts/package builds both packages" scripts/package "$tmp/dist"
debs=("$tmp"/dist/*.deb)
check "two packages" test "${#debs[@]}" -eq 2

no_lintian_errors() {
  command -v lintian >/dev/null || { echo "lintian is not installed"; return 1; }
  lintian "${debs[@]}" >"$tmp/lintian" 2>&1
  cat "$tmp/lintian"
  ! grep -q '^E:' "$tmp/lintian"
}
check "lintian reports no error" no_lintian_errors

root="$tmp/root"
install_fresh() {
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
  : >"$root/var/lib/dpkg/status"
  # The libraries it depends on are the host's: the fresh root has no dpkg
  # record of them.
  dpkg --root="$root" --force-depends -i "${debs[@]}"
  dpkg --root="$root" -s diskwire libdiskwire0 | grep -c '^Status: install ok installed' | grep -qx 2
}
check "dpkg -i into a fresh root" install_fresh
# dpkg-shlibdeps cannot see it: the engine dlopens libsodium (storage/blake2b.h).
check "both packages depend on the libsodium the engine loads" bash -c "
  for deb in ${debs[*]}; do dpkg-deb -f \"\$deb\" Depends | grep -q 'libsodium23 (>= '; done"
dw="$root/usr/bin/diskwire"
version=$(sed -n 's/.*kVersion\[\] = "\(.*\)";/\1/p' core/version.h)
check "diskwire --version from the installed path" \
  bash -c "[ \"\$('$dw' --version)\" = 'diskwire $version' ]"
check "the library, and the engine it loads, are where diskwire run looks" \
  test -f "$root/usr/lib/diskwire/libdiskwire.so" -a -f "$root/usr/lib/diskwire/libdiskwire_engine.so"
check "man pages render and document every command and variable" bash -c "
  man -l '$root/usr/share/man/man8/diskwire.8.gz' 2>/dev/null | grep -q 'diskwire enable UNIT' &&
  for v in \$('$dw' --help | grep -o '^  DISKWIRE_[A-Z_]*'); do
    man -l '$root/usr/share/man/man7/diskwire.7.gz' 2>/dev/null | grep -q \"\$v\" || { echo \"no \$v\"; exit 1; }
  done"
check "bash completion offers commands and flags" bash -c "
  source '$root/usr/share/bash-completion/completions/diskwire'
  COMP_WORDS=(diskwire en); COMP_CWORD=1; _diskwire; [[ \" \${COMPREPLY[*]} \" == *' enable '* ]] &&
  COMP_WORDS=(diskwire enable --vol); COMP_CWORD=2; _diskwire; [[ \" \${COMPREPLY[*]} \" == *' --volume '* ]]"

transfer() {
  mkdir -p "$tmp/vol"
  local port=$((20000 + RANDOM % 20000)) log="$tmp/dw.log"
  head -c 1048576 /dev/urandom >"$tmp/in"
  "$dw" run --volume "$tmp/vol" --select "$port" --mode storage --log "$log" -- \
    python3 -c "
import socket, sys
l = socket.create_server(('127.0.0.1', $port))
print('ready', flush=True)
c, _ = l.accept()
with open('$tmp/out.bin', 'wb') as f:
    while data := c.recv(65536):
        f.write(data)
" >"$tmp/server.out" &
  local server=$!
  for _ in $(seq 100); do grep -q ready "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
  "$dw" run --volume "$tmp/vol" --select "$port" --mode storage --log "$log" -- \
    python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(open('$tmp/in', 'rb').read())
s.shutdown(socket.SHUT_WR)
s.recv(1)
"
  wait "$server"
  cmp "$tmp/in" "$tmp/out.bin" && grep -q 'failing over to storage (storage mode)' "$log"
}
check "a diskwire run transfer over the volume with the installed library" transfer

config_doc_matches_help() {
  local bad=0
  while read -r name default; do
    grep -q "^| \`$name\` |" docs/CONFIG.md || { echo "docs/CONFIG.md lacks $name"; bad=1; }
    if [[ "$default" =~ ^[0-9]+$ ]] && ! grep "^| \`$name\` |" docs/CONFIG.md | grep -q "| $default |"; then
      echo "docs/CONFIG.md: $name default is not $default"
      bad=1
    fi
  done < <("$dw" --help | sed -n 's/^  \(DISKWIRE_[A-Z_]*\)=[^ ]*  (default \(.*\))$/\1 \2/p')
  for name in $(grep -o '^| `DISKWIRE_[A-Z_]*`' docs/CONFIG.md | tr -d '|` '); do
    "$dw" --help | grep -q "^  $name=" || { echo "docs/CONFIG.md documents $name, which diskwire lacks"; bad=1; }
  done
  return $bad
}
check "docs/CONFIG.md has every variable of diskwire --help, with its default" config_doc_matches_help

[ "$failures" -eq 0 ]
