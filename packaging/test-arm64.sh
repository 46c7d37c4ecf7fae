#!/bin/sh
# Checks the arm64 build on an amd64 machine (run by `make arm64-test` and
# CI): the binary is static, runs under qemu-user (version; check, which
# writes nothing; exporters allow and list and stats, which create, migrate,
# write and read a SQLite database; decode of a MikroTik capture, whose
# output must equal the host binary's), its .deb passes lintian and its
# image is an arm64 image.
#
# usage: packaging/test-arm64.sh BINARY   (DEB_VERSION as for build-deb.sh)
set -eu
cd "$(dirname "$0")/.."

bin=${1:?usage: test-arm64.sh BINARY}
version=${DEB_VERSION:-$(packaging/version.sh)}
deb=dist/flowbox_${version}-1_arm64.deb
image=dist/flowbox-image_${version}_arm64.tar
capture=../shared/captures/logstash-codec-netflow/netflow5-mikrotik.pcap

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "== $*"; }
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
[ -n "$qemu" ] || fail "qemu-user is not installed (apt-get install qemu-user-static)"
command -v lintian >/dev/null || fail "lintian is not installed"
[ -f "$deb" ] || fail "$deb is missing (make deb-arm64)"
[ -f "$image" ] || fail "$image is missing (make image-arm64)"

packaging/check-binary.sh arm64 "$bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/flowbox-arm64-test.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "run $bin under $qemu"
out=$("$qemu" "$bin" version) || fail "$bin version failed under qemu"
case $out in "flowbox "?*) ;; *) fail "$bin version printed '$out'" ;; esac
"$qemu" "$bin" check --data-dir "$work/data" >"$work/check.out" 2>&1 ||
	{ cat "$work/check.out" >&2; fail "$bin check failed under qemu"; }
[ ! -e "$work/data" ] || fail "check under qemu wrote to the data directory (it must only read)"
# SQLite under qemu: a command that creates, migrates and writes the
# database, then a read-only reader of it.
"$qemu" "$bin" exporters allow --data-dir "$work/data" 192.0.2.7 >"$work/allow.out" 2>&1 ||
	{ cat "$work/allow.out" >&2; fail "$bin exporters allow failed under qemu"; }
[ -s "$work/data/flowbox.db" ] || fail "exporters allow under qemu created no database"
"$qemu" "$bin" exporters list --data-dir "$work/data" 2>&1 | grep -q '^192\.0\.2\.7/32 ' ||
	fail "exporters list under qemu does not show the allowed exporter"
"$qemu" "$bin" stats --json --data-dir "$work/data" >/dev/null 2>&1 || fail "$bin stats failed under qemu"
if [ -f "$capture" ]; then
	"$qemu" "$bin" decode "$capture" >"$work/arm64.json" 2>/dev/null || fail "$bin decode failed under qemu"
	host=bin/flowbox
	[ -x "$host" ] || fail "$host is missing (make build): the arm64 decode is compared with it"
	"$host" decode "$capture" >"$work/host.json" 2>/dev/null || fail "$host decode failed"
	[ "$(wc -l <"$work/arm64.json")" -gt 0 ] || fail "decode under qemu printed no flows"
	cmp -s "$work/arm64.json" "$work/host.json" || fail "arm64 and host decode $capture differently"
	log "arm64 decodes $(wc -l <"$work/arm64.json") flows of $(basename "$capture") like the host"
elif [ "${FLOWBOX_FUNCTIONAL_TESTS:-}" = 1 ]; then
	fail "$capture is missing"
else
	echo "note: $capture is missing; decode comparison skipped"
fi

log "lintian $deb"
lintian --fail-on error --display-level '>=warning' "$deb" >"$work/lintian.txt" 2>&1 ||
	{ cat "$work/lintian.txt" >&2; fail "lintian reports errors on $deb"; }
grep -v '^running with root' "$work/lintian.txt" || true
[ "$(dpkg-deb --field "$deb" Architecture)" = arm64 ] || fail "$deb is not an arm64 package"

log "image $image"
cfg=$(tar -xOf "$image" manifest.json | sed -n 's/.*"Config":"\([^"]*\)".*/\1/p')
[ -n "$cfg" ] || fail "$image has no manifest.json with a Config"
tar -xOf "$image" "$cfg" | grep -q '"architecture":"arm64"' || fail "$image is not an arm64 image"
echo "PASS: arm64 binary, $deb, $image"
