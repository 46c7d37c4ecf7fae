#!/bin/sh
# Runs the .deb under a real systemd (run by `make systemd-test` and CI, as
# root). CI has no systemd as PID 1, so this boots one in a container: a
# minimal Debian 12 root filesystem made with debootstrap (from the host's
# Debian mirror), started by podman with --systemd=always. Inside it:
#   - dpkg -i enables and starts flowbox.service under the hardened unit
#     (user flowbox, ProtectSystem=strict, system call filter...);
#   - /healthz answers; flows sent to UDP 2055 are stored;
#   - a SIGKILLed service is restarted (Restart=on-failure);
#   - systemctl stop is a clean exit (status 0);
#   - an upgrade restarts the service and keeps the data;
#   - systemd-analyze security rates the unit at most 2.0 ("OK");
#   - dpkg --purge stops it and removes the unit, the data and the user.
#
# usage: packaging/test-systemd.sh DEB BINARY
set -eu
cd "$(dirname "$0")/.."

deb=${1:?usage: test-systemd.sh DEB BINARY}
bin=${2:?usage: test-systemd.sh DEB BINARY}

fail() {
	echo "FAIL: $*" >&2
	if [ -n "${ctr:-}" ]; then
		echo "--- journal of flowbox.service (last 30 lines)" >&2
		pm exec "$ctr" journalctl -u flowbox --no-pager 2>&1 | tail -30 >&2 || true
	fi
	exit 1
}
log() { echo "== $*"; }
[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, rootful podman)"
for t in podman runc debootstrap; do
	command -v "$t" >/dev/null || fail "$t is not installed (apt-get install podman runc debootstrap)"
done
[ -f "$deb" ] || fail "$deb is missing (make deb)"
[ -f "$bin" ] || fail "$bin is missing (make build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/flowbox-systemd-test.XXXXXX")
export CONTAINERS_CONF="$PWD/packaging/container/containers.conf"
pm() { podman --root "$work/store" --runroot "$work/run" --storage-driver vfs "$@"; }
ctr=
cleanup() {
	if [ -n "$ctr" ]; then pm rm -f -t 0 "$ctr" >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,procps,curl,man-db \
	bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
version=$(dpkg-deb --field "$deb" Version)
arch=$(dpkg-deb --field "$deb" Architecture)
upstream=${version%-*}
cp "$deb" "$work/rootfs/root/flowbox.deb"
DEB_VERSION="$upstream+systemdtest" packaging/build-deb.sh "$arch" "$bin" >/dev/null ||
	fail "could not build the upgrade package"
mv "dist/flowbox_${upstream}+systemdtest-1_${arch}.deb" "$work/rootfs/root/flowbox-upgrade.deb"
cp "$bin" "$work/rootfs/root/flowbox-sim"

log "boot systemd in a container"
ctr=flowbox-systemd-test-$$
pm run -d --name "$ctr" --systemd=always --rootfs "$work/rootfs" /sbin/init >/dev/null 2>"$work/run.log" ||
	fail "podman run failed: $(cat "$work/run.log")"
ct() { pm exec "$ctr" "$@"; }
i=0
until state=$(ct systemctl is-system-running 2>/dev/null) || [ "$state" = degraded ]; do
	i=$((i + 1))
	[ "$i" -le 60 ] || fail "systemd did not finish booting: $state"
	sleep 0.5
done

# waitactive: wait for flowbox.service to be active and answer /healthz.
waitactive() {
	i=0
	until [ "$(ct systemctl is-active flowbox.service 2>/dev/null)" = active ] &&
		ct curl -fsS -m 2 --cacert /var/lib/flowbox/web-selfsigned.crt https://127.0.0.1:8080/healthz >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le 60 ] || fail "flowbox.service is not active and healthy: $(ct systemctl is-active flowbox.service)"
		sleep 0.5
	done
}
stored() {
	ct runuser -u flowbox -- flowbox stats --json --config /etc/flowbox/flowbox.yaml |
		sed -n 's/^ *"flows_stored": \([0-9]*\),*$/\1/p' | awk '{s += $1} END {print s + 0}'
}

log "dpkg -i starts the service"
ct dpkg -i /root/flowbox.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
[ "$(ct systemctl is-enabled flowbox.service)" = enabled ] || fail "flowbox.service is not enabled"
waitactive
[ "$(ct ps -o user= -C flowbox | sort -u)" = flowbox ] || fail "flowbox does not run as user flowbox"
# The simulated exporter sends from loopback: allow it, as an operator
# would accept an unknown exporter (`flowbox exporters allow`), and restart
# so that the service has loaded it before the first flow.
ct runuser -u flowbox -- flowbox exporters allow --config /etc/flowbox/flowbox.yaml 127.0.0.0/8 >/dev/null ||
	fail "flowbox exporters allow failed"
ct systemctl restart flowbox.service
waitactive
sent=$(ct /root/flowbox-sim simulate --target 127.0.0.1:2055 --rate 2000 --duration 2s --json 2>/dev/null |
	sed -n 's/.*"flows":\([0-9]*\).*/\1/p')
[ "${sent:-0}" -gt 1000 ] || fail "flowbox simulate sent ${sent:-no} flows"
want=$((sent * 95 / 100))
i=0
until [ "$(stored)" -ge "$want" ]; do
	i=$((i + 1))
	[ "$i" -le 40 ] || fail "$(stored) flows stored of $sent sent under systemd"
	sleep 0.5
done
log "the service stored $(stored) of $sent flows"

log "Restart=on-failure"
ct systemctl kill --signal=KILL flowbox.service
i=0
until [ "$(ct systemctl show -P NRestarts flowbox.service)" -ge 1 ]; do
	i=$((i + 1))
	[ "$i" -le 40 ] || fail "a killed flowbox was not restarted"
	sleep 0.5
done
waitactive

log "systemctl stop is clean"
ct systemctl stop flowbox.service
[ "$(ct systemctl show -P ExecMainStatus flowbox.service)" = 0 ] ||
	fail "flowbox exited with $(ct systemctl show -P ExecMainStatus flowbox.service) on stop"
[ "$(ct systemctl show -P Result flowbox.service)" = success ] || fail "stop result: $(ct systemctl show -P Result flowbox.service)"
ct systemctl start flowbox.service
waitactive

log "upgrade restarts the service and keeps the data"
before=$(stored)
pid=$(ct systemctl show -P MainPID flowbox.service)
ct dpkg -i /root/flowbox-upgrade.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i (upgrade) failed"; }
waitactive
[ "$(ct systemctl show -P MainPID flowbox.service)" != "$pid" ] || fail "the upgrade did not restart flowbox"
[ "$(stored)" -ge "$before" ] || fail "after upgrade $(stored) flows stored, before $before"

log "systemd-analyze security"
exposure=$(ct systemd-analyze security --no-pager flowbox.service | sed -n 's/.*Overall exposure level for flowbox.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure level $exposure, want <= 2.0"
echo "exposure level $exposure"

log "dpkg --purge stops and removes everything"
ct dpkg --purge flowbox >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge failed"; }
ct pgrep -x flowbox >/dev/null && fail "flowbox still runs after purge"
ct systemctl cat flowbox.service >/dev/null 2>&1 && fail "systemd still knows flowbox.service after purge"
for f in /var/lib/flowbox /etc/flowbox /etc/default/flowbox /etc/systemd/system/multi-user.target.wants/flowbox.service; do
	ct test ! -e "$f" || fail "purge left $f"
done
ct getent passwd flowbox >/dev/null && fail "purge left the user flowbox"
echo "PASS: $deb under systemd $(ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
