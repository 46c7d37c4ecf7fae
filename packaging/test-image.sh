#!/bin/sh
# Smoke test of the flowbox container image with podman (run by
# `make image-test` and CI; needs root, podman, runc and curl).
#
# usage: packaging/test-image.sh IMAGE_TAR [BINARY]
#
# IMAGE_TAR is what `make image` wrote (dist/flowbox-image_VERSION_ARCH.tar);
# BINARY (default bin/flowbox) sends the NetFlow. The test loads the archive
# into a private, temporary podman store (vfs driver, with the repo's
# containers.conf: runc, cgroupfs, ulimits a sandbox allows), then:
#   - checks the image: non-root user, healthcheck, ports, volume;
#   - runs it with a named volume and FLOWBOX_ADMIN_PASSWORD, the ports
#     published on loopback as `podman run -p` does;
#   - /healthz answers over HTTPS with the self-signed certificate kept in
#     the volume (curl trusts only that certificate; its fingerprint is the
#     one `flowbox web-fingerprint` prints), `podman healthcheck run` is
#     healthy, the admin can log in with the password from the environment;
#   - an API token made with `podman exec ... flowbox token create`;
#   - NetFlow v9 to the published 2055/udp and IPFIX to 4739/udp (flowbox
#     simulate) shows up through GET /api/v1/flows and `flowbox stats`;
#   - `podman stop` is a clean shutdown; a new container on the same volume,
#     configured by FLOWBOX_LISTEN_WEB, still has the flows and the token;
#   - `flowbox backup` from a second container on the volume works;
#   - the files in the volume belong to uid 65532.
# Everything it creates is removed at exit.
set -eu
cd "$(dirname "$0")/.."

tarball=${1:?usage: test-image.sh IMAGE_TAR [BINARY]}
bin=${2:-bin/flowbox}

fail() {
	echo "FAIL: $*" >&2
	if [ -n "${ctr:-}" ]; then
		echo "--- podman logs $ctr (last 40 lines)" >&2
		pm logs "$ctr" 2>&1 | tail -40 >&2 || true
	fi
	exit 1
}
log() { echo "== $*"; }
for t in podman runc curl; do
	command -v "$t" >/dev/null || fail "$t is not installed (apt-get install podman runc curl)"
done
[ "$(id -u)" = 0 ] || fail "run as root (rootful podman publishes ports with CNI)"
[ -f "$tarball" ] || fail "$tarball is missing (make image)"
[ -x "$bin" ] || fail "$bin is missing (make build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/flowbox-image-test.XXXXXX")
export CONTAINERS_CONF="$PWD/packaging/container/containers.conf"
pm() { podman --root "$work/root" --runroot "$work/run" --storage-driver vfs "$@"; }
vol=flowbox-test-$$
ctr=
cleanup() {
	pm rm -f -t 0 flowbox-test-a flowbox-test-b >/dev/null 2>&1 || true
	pm volume rm -f "$vol" >/dev/null 2>&1 || true
	pm rmi -a -f >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "load $tarball"
image=$(pm load -q -i "$tarball" | sed -n 's/^Loaded image[^:]*: *//p' | head -1)
[ -n "$image" ] || fail "podman load printed no image name"
user=$(pm image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || fail "image user is '$user', want 65532:65532"
hc=$(pm image inspect --format '{{json .HealthCheck}}' "$image")
case $hc in *healthcheck*) ;; *) fail "image has no HEALTHCHECK running flowbox healthcheck: $hc" ;; esac
ports=$(pm image inspect --format '{{json .Config.ExposedPorts}}' "$image")
for p in 8080/tcp 2055/udp 4739/udp; do
	case $ports in *"\"$p\""*) ;; *) fail "image does not expose $p: $ports" ;; esac
done
case $(pm image inspect --format '{{json .Config.Volumes}}' "$image") in
*'"/var/lib/flowbox"'*) ;;
*) fail "image has no VOLUME /var/lib/flowbox" ;;
esac

# hostport CONTAINER PORT/PROTO: the loopback port podman published it on.
hostport() {
	pm port "$1" "$2" | sed -n 's/^127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' | head -1
}
# https: curl trusting only the console's self-signed certificate in the
# volume (it names 127.0.0.1), i.e. pinned.
https() { curl --cacert "$(pm volume inspect --format '{{.Mountpoint}}' "$vol")/web-selfsigned.crt" "$@"; }
# waithealth URL: wait up to 30 s for /healthz.
waithealth() {
	i=0
	until https -fsS -m 2 "$1/healthz" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le 60 ] || fail "$1/healthz did not answer within 30 s"
		if [ "$(pm inspect --format '{{.State.Running}}' "$ctr")" != true ]; then
			fail "container $ctr exited"
		fi
		sleep 0.5
	done
}
# healthy: the image's HEALTHCHECK passes (podman 4.3 prints nothing when
# it does, "unhealthy" when not).
healthy() {
	out=$(pm healthcheck run "$ctr" 2>&1) || fail "podman healthcheck run: $out"
	status=$(pm inspect --format '{{.State.Health.Status}}' "$ctr")
	[ "$status" = healthy ] || fail "health status is '$status' after podman healthcheck run ($out)"
}
# stored: flows stored for all exporters, per `flowbox stats --json`.
stored() {
	pm exec "$ctr" /usr/bin/flowbox stats --json --config /etc/flowbox/flowbox.yaml |
		sed -n 's/^ *"flows_stored": \([0-9]*\),*$/\1/p' | awk '{s += $1} END {print s + 0}'
}
# apiflows URL TOKEN: how many flows GET /api/v1/flows?range=1h lists.
apiflows() {
	https -fsS -m 10 -H "Authorization: Bearer $2" "$1/api/v1/flows?range=1h&limit=1000" |
		grep -o '"exporter":' | wc -l
}

log "run with a new volume and FLOWBOX_ADMIN_PASSWORD"
password=image-test-$$-pw
ctr=flowbox-test-a
# --health-interval=disable: podman schedules periodic checks with systemd
# timers, absent in CI (podman 4.3 still complains on stderr, kept in
# $work/run.log); `podman healthcheck run` below runs the check.
pm run -d --name "$ctr" --health-interval=disable \
	-p 127.0.0.1::8080/tcp -p 127.0.0.1::2055/udp -p 127.0.0.1::4739/udp \
	-v "$vol:/var/lib/flowbox" -e FLOWBOX_ADMIN_PASSWORD="$password" \
	-e FLOWBOX_ALLOWED_EXPORTERS=0.0.0.0/0 \
	"$image" >/dev/null 2>"$work/run.log" || fail "podman run failed: $(cat "$work/run.log")"
web=https://127.0.0.1:$(hostport "$ctr" 8080/tcp)
nf=127.0.0.1:$(hostport "$ctr" 2055/udp)
ipfix=127.0.0.1:$(hostport "$ctr" 4739/udp)
waithealth "$web"
log "healthz answers on $web; netflow on $nf, ipfix on $ipfix"
healthy
logged=$(pm logs "$ctr" 2>&1 | sed -n 's|.*msg="web console listening".* tls_sha256=\([0-9A-F:]*\).*|\1|p' | head -1)
printed=$(pm exec "$ctr" /usr/bin/flowbox web-fingerprint --config /etc/flowbox/flowbox.yaml 2>&1) ||
	fail "flowbox web-fingerprint in the container failed: $printed"
[ -n "$logged" ] && [ "$logged" = "$printed" ] ||
	fail "the logged certificate fingerprint '$logged' is not the one flowbox web-fingerprint prints '$printed'"

code=$(https -s -o /dev/null -w '%{http_code}' -d username=admin -d "password=$password" "$web/login")
[ "$code" = 303 ] || fail "login with FLOWBOX_ADMIN_PASSWORD answered $code, want 303"
code=$(https -s -o /dev/null -w '%{http_code}' -d username=admin -d "password=wrong-$password" "$web/login")
[ "$code" = 401 ] || fail "login with a wrong password answered $code, want 401"
code=$(https -s -o /dev/null -w '%{http_code}' "$web/api/v1/flows?range=1h")
[ "$code" = 401 ] || fail "the API without a token answered $code, want 401"
token=$(pm exec "$ctr" /usr/bin/flowbox token create --name image-test --config /etc/flowbox/flowbox.yaml 2>/dev/null) ||
	fail "flowbox token create in the container failed"
[ "$(apiflows "$web" "$token")" = 0 ] || fail "flows listed before any were sent"

log "send NetFlow v9 to $nf and IPFIX to $ipfix"
# From 127.0.0.1: the published ports are DNATed, and the kernel drops
# forwarded packets from other loopback addresses.
sent_v9=$("$bin" simulate --target "$nf" --source 127.0.0.1 --routers 1 --rate 2000 --duration 3s --json 2>/dev/null |
	sed -n 's/.*"flows":\([0-9]*\).*/\1/p')
sent_ipfix=$("$bin" simulate --target "$ipfix" --source 127.0.0.1 --routers 1 --rate 500 --duration 2s --version ipfix --json 2>/dev/null |
	sed -n 's/.*"flows":\([0-9]*\).*/\1/p')
[ "${sent_v9:-0}" -gt 1000 ] && [ "${sent_ipfix:-0}" -gt 200 ] ||
	fail "flowbox simulate sent too little: v9 ${sent_v9:-?}, ipfix ${sent_ipfix:-?}"
sent=$((sent_v9 + sent_ipfix))
want=$((sent * 95 / 100))
i=0
until [ "$(stored)" -ge "$want" ]; do
	i=$((i + 1))
	[ "$i" -le 40 ] || fail "stats shows $(stored) flows stored of $sent sent (want >= $want)"
	sleep 0.5
done
n=$(apiflows "$web" "$token")
[ "$n" -gt 0 ] || fail "GET /api/v1/flows lists no flows"
before=$(stored)
log "sent $sent flows; stored $before; the API lists $n (first page)"

log "stop, and start a new container on the same volume with FLOWBOX_LISTEN_WEB"
pm stop -t 30 "$ctr" >/dev/null 2>>"$work/run.log" || fail "podman stop failed: $(cat "$work/run.log")"
rc=$(pm inspect --format '{{.State.ExitCode}}' "$ctr")
[ "$rc" = 0 ] || fail "flowbox exited with $rc on SIGTERM, want 0"
pm rm "$ctr" >/dev/null 2>>"$work/run.log"
ctr=flowbox-test-b
pm run -d --name "$ctr" --health-interval=disable \
	-p 127.0.0.1::9090/tcp -p 127.0.0.1::2055/udp \
	-v "$vol:/var/lib/flowbox" -e FLOWBOX_LISTEN_WEB=:9090 \
	"$image" >/dev/null 2>"$work/run.log" || fail "podman run (second) failed: $(cat "$work/run.log")"
web=https://127.0.0.1:$(hostport "$ctr" 9090/tcp)
waithealth "$web"
healthy
after=$(stored)
[ "$after" -ge "$before" ] || fail "after restart $after flows stored, before $before"
n=$(apiflows "$web" "$token")
[ "$n" -gt 0 ] || fail "after restart the token lists no flows"
code=$(https -s -o /dev/null -w '%{http_code}' -d username=admin -d "password=$password" "$web/login")
[ "$code" = 303 ] || fail "after restart the admin login answered $code"
log "after restart: $after flows stored, the API lists $n, token and admin kept"

log "flowbox backup from a second container on the volume, as documented"
install -d -o 65532 -g 65532 -m 0700 "$work/backups"
pm run --rm -v "$vol:/var/lib/flowbox" -v "$work/backups:/backup" "$image" backup /backup/b1 >/dev/null 2>>"$work/run.log" ||
	fail "backup container failed: $(tail -5 "$work/run.log")"
copied=$("$bin" stats --json --data-dir "$work/backups/b1" | sed -n 's/^ *"flows_stored": \([0-9]*\),*$/\1/p' | awk '{s += $1} END {print s + 0}')
[ "$copied" -ge "$before" ] || fail "the backup holds $copied flows, want >= $before"

mnt=$(pm volume inspect --format '{{.Mountpoint}}' "$vol")
owner=$(stat -c %u "$mnt/flowbox.db")
[ "$owner" = 65532 ] || fail "flowbox.db in the volume belongs to uid $owner, want 65532"
pm stop -t 30 "$ctr" >/dev/null 2>>"$work/run.log"
echo "PASS: image $image"
