#!/bin/sh
# Smoke test of the flowbox .deb on this machine (run by `make deb-test` and
# CI, as root, on a machine without flowbox installed; CI has no systemd as
# PID 1, so the service's command runs directly as the flowbox user).
#
# usage: packaging/test-deb.sh DEB BINARY
#
# BINARY is the binary inside DEB; it is packaged again with a higher
# version to test an upgrade. Steps:
#   lintian (no errors), copyright lists every linked Go module;
#   dpkg -i: user, data directory, conffiles, permissions, enabled unit,
#     sysctl applied; systemd-analyze verify prints nothing; man page;
#   the packaged command line serves HTTPS with the packaged config (the
#     self-signed certificate's fingerprint logged and printed by flowbox
#     web-fingerprint; curl trusts only that certificate), gets the full
#     receive buffer; the fresh install cannot be claimed without the setup
#     token (POST /setup without it, or with it through a foreign Host, is
#     refused; with it the admin is created); it stores flows, answers the
#     API with a token, backs up while running, stops cleanly on SIGTERM;
#   upgrade to a higher version keeps the data and the edited conffile;
#   dpkg --remove keeps data and config; dpkg --purge leaves nothing.
# On exit the package is purged if still installed and net.core.rmem_max is
# restored.
set -eu
cd "$(dirname "$0")/.."

deb=${1:?usage: test-deb.sh DEB BINARY}
bin=${2:?usage: test-deb.sh DEB BINARY}

fail() {
	echo "FAIL: $*" >&2
	if [ -s "${work:-/nonexistent}/serve.log" ]; then
		echo "--- flowbox serve log (last 30 lines)" >&2
		tail -30 "$work/serve.log" >&2
	fi
	exit 1
}
log() { echo "== $*"; }
[ "$(id -u)" = 0 ] || fail "run as root: the test installs and purges the package"
for t in dpkg lintian systemd-analyze curl runuser setpriv go man file; do
	command -v "$t" >/dev/null || fail "$t is not installed"
done
[ -f "$deb" ] || fail "$deb is missing (make deb)"
[ -f "$bin" ] || fail "$bin is missing (make build)"
# Never touch a real installation.
if dpkg-query -W -f '${Status}' flowbox 2>/dev/null | grep -q 'installed\|config-files'; then
	fail "flowbox is already installed here; purge it first"
fi
getent passwd flowbox >/dev/null && fail "a user flowbox already exists"
[ -e /var/lib/flowbox ] && fail "/var/lib/flowbox already exists"
[ -e /etc/flowbox ] && fail "/etc/flowbox already exists"

work=$(mktemp -d "${TMPDIR:-/tmp}/flowbox-deb-test.XXXXXX")
chmod 0755 "$work"
rmem=$(cat /proc/sys/net/core/rmem_max)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
	if dpkg-query -W -f '${Status}' flowbox 2>/dev/null | grep -q 'installed\|config-files'; then
		dpkg --purge flowbox >/dev/null 2>&1 || true
	fi
	echo "$rmem" >/proc/sys/net/core/rmem_max 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

version=$(dpkg-deb --field "$deb" Version)
arch=$(dpkg-deb --field "$deb" Architecture)
log "lintian $deb"
lintian --fail-on error --display-level '>=warning' "$deb" >"$work/lintian.txt" 2>&1 ||
	{ cat "$work/lintian.txt" >&2; fail "lintian reports errors"; }
grep -q '^E:' "$work/lintian.txt" && { cat "$work/lintian.txt" >&2; fail "lintian reports errors"; }
grep -v '^running with root' "$work/lintian.txt" || true

log "copyright covers the Go modules linked into the binary"
for m in $(go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}}{{end}}{{end}}' ./cmd/flowbox | sort -u); do
	m=${m%/v[0-9]*}
	grep -q "^Files:.* $m/\*\|^       $m/\*" packaging/debian/copyright ||
		fail "packaging/debian/copyright has no Files: paragraph for Go module $m"
done

log "dpkg -i $deb"
dpkg -i "$deb" </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
uid=$(id -u flowbox) || fail "postinst did not create the user flowbox"
gid=$(getent group flowbox | cut -d: -f3)
[ -n "$gid" ] || fail "postinst did not create the group flowbox"
[ "$uid" -lt 1000 ] || fail "flowbox is not a system user (uid $uid)"
[ "$(getent passwd flowbox | cut -d: -f6,7)" = /var/lib/flowbox:/usr/sbin/nologin ] ||
	fail "user flowbox: $(getent passwd flowbox)"
[ "$(stat -c '%U:%G %a' /var/lib/flowbox)" = "flowbox:flowbox 750" ] ||
	fail "/var/lib/flowbox is $(stat -c '%U:%G %a' /var/lib/flowbox)"
[ "$(stat -c '%U:%G %a' /etc/flowbox/flowbox.yaml)" = "root:flowbox 640" ] ||
	fail "/etc/flowbox/flowbox.yaml is $(stat -c '%U:%G %a' /etc/flowbox/flowbox.yaml)"
conffiles=$(dpkg-query -W -f '${Conffiles}' flowbox)
for f in /etc/flowbox/flowbox.yaml /etc/default/flowbox; do
	echo "$conffiles" | grep -q " $f " || fail "$f is not a conffile"
done
[ -L /etc/systemd/system/multi-user.target.wants/flowbox.service ] ||
	fail "the service was not enabled (no multi-user.target.wants link)"
[ "$(/usr/bin/flowbox version)" != "" ] || fail "/usr/bin/flowbox version printed nothing"
file -b /usr/bin/flowbox | grep -q 'statically linked' || fail "/usr/bin/flowbox is not static"
if [ -w /proc/sys/net/core/rmem_max ]; then
	[ "$(cat /proc/sys/net/core/rmem_max)" -ge 16777216 ] ||
		fail "postinst did not raise net.core.rmem_max: $(cat /proc/sys/net/core/rmem_max)"
	raised=yes
else
	echo "note: /proc/sys is read-only here; the sysctl applies at boot"
	raised=no
fi
man -w flowbox >/dev/null 2>&1 || fail "man flowbox: no manual page"
for c in $(/usr/bin/flowbox help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p'); do
	zcat /usr/share/man/man1/flowbox.1.gz | grep -Eq "^\.B $c( |\$)" ||
		fail "the manual page does not describe the command $c (packaging/man/flowbox.1)"
done

log "systemd-analyze verify"
for unit in /usr/lib/systemd/system/flowbox.service packaging/systemd/flowbox.service; do
	out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit failed: $out"
	[ -z "$out" ] || fail "systemd-analyze verify $unit printed: $out"
done

# https: curl trusting only the console's self-signed certificate (it names
# 127.0.0.1), i.e. pinned.
https() { curl --cacert /var/lib/flowbox/web-selfsigned.crt "$@"; }
# serve [ADMIN_PASSWORD]: run the unit's command line as the unit's user, on
# loopback ports chosen by the kernel (logged by flowbox), with the packaged
# config; with FLOWBOX_ADMIN_PASSWORD when given (as /etc/default/flowbox
# may set it). setpriv execs flowbox itself as flowbox, as systemd's User=
# does (runuser would stay in between and turn SIGTERM into exit status 143).
serve() {
	: >"$work/serve.log"
	# The simulated exporter sends from loopback; only onboarded routers
	# and allowed exporters are stored.
	(cd /var/lib/flowbox && export FLOWBOX_ALLOWED_EXPORTERS=127.0.0.0/8 &&
		if [ -n "${1:-}" ]; then export FLOWBOX_ADMIN_PASSWORD="$1"; fi && exec setpriv \
		--reuid=flowbox --regid=flowbox --init-groups --inh-caps=-all --bounding-set=-all \
		/usr/bin/flowbox serve --config /etc/flowbox/flowbox.yaml \
		--listen-web 127.0.0.1:0 --listen-netflow 127.0.0.1:0) >>"$work/serve.log" 2>&1 &
	pid=$!
	i=0
	while :; do
		web=$(sed -n 's|.*msg="web console listening".* url=\(https://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$work/serve.log" | head -1)
		nf=$(sed -n 's|.*msg="listening for flows".* bound=\(127\.0\.0\.1:[0-9]*\) .*|\1|p' "$work/serve.log" | head -1)
		if [ -n "$web" ] && [ -n "$nf" ] && https -fsS -m 2 "$web/healthz" >/dev/null 2>&1; then
			break
		fi
		kill -0 "$pid" 2>/dev/null || fail "flowbox serve exited"
		i=$((i + 1))
		[ "$i" -le 60 ] || fail "flowbox serve did not answer /healthz within 30 s"
		sleep 0.5
	done
}
# stop: SIGTERM, and flowbox must exit 0 within 30 s.
stop() {
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le 60 ] || fail "flowbox did not stop within 30 s of SIGTERM"
		sleep 0.5
	done
	rc=0
	wait "$pid" || rc=$?
	pid=
	[ "$rc" = 0 ] || fail "flowbox exited with $rc on SIGTERM"
}
apiflows() {
	https -fsS -m 10 -H "Authorization: Bearer $token" "$web/api/v1/flows?range=1h&limit=1000" |
		grep -o '"exporter":' | wc -l
}
stored() {
	runuser -u flowbox -- /usr/bin/flowbox stats --json --config /etc/flowbox/flowbox.yaml "$@" |
		sed -n 's/^ *"flows_stored": \([0-9]*\),*$/\1/p' | awk '{s += $1} END {print s + 0}'
}

log "run the service's command as flowbox with the packaged config (a fresh install: no admin password)"
password=deb-test-$$-password
serve
log "healthz answers on $web over HTTPS; netflow on $nf"
if [ "$raised" = yes ] && grep -q 'smaller UDP receive buffer' "$work/serve.log"; then
	fail "the collector did not get its receive buffer although rmem_max was raised"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://${web#https://}/healthz") || true
[ "$code" != 200 ] || fail "the console answers plain HTTP by default"
logged=$(sed -n 's|.*msg="web console listening".* tls_sha256=\([0-9A-F:]*\).*|\1|p' "$work/serve.log" | head -1)
printed=$(runuser -u flowbox -- /usr/bin/flowbox web-fingerprint --config /etc/flowbox/flowbox.yaml 2>"$work/err") ||
	fail "flowbox web-fingerprint failed: $(cat "$work/err")"
[ -n "$logged" ] && [ "$logged" = "$printed" ] ||
	fail "the logged certificate fingerprint '$logged' is not the one flowbox web-fingerprint prints '$printed'"

log "the fresh install cannot be claimed without the setup token"
setup_token=$(runuser -u flowbox -- /usr/bin/flowbox setup-token --config /etc/flowbox/flowbox.yaml 2>"$work/err") ||
	fail "flowbox setup-token failed: $(cat "$work/err")"
[ ${#setup_token} -ge 16 ] || fail "flowbox setup-token printed '$setup_token'"
grep -q "$printed" "$work/err" || fail "flowbox setup-token does not show the certificate fingerprint: $(cat "$work/err")"
# claim [TOKEN [HOST]]: POST /setup as a browser would; prints the status.
claim() {
	https -s -o /dev/null -w '%{http_code}' -H "Host: ${2:-${web#https://}}" \
		--data-urlencode "token=${1:-}" -d username=admin \
		--data-urlencode "password=$password" --data-urlencode "confirm=$password" "$web/setup"
}
code=$(claim) || true
[ "$code" = 403 ] || fail "POST /setup without the setup token answered $code, want 403"
code=$(claim "0123456789abcdef0123456789abcdef") || true
[ "$code" = 403 ] || fail "POST /setup with a wrong setup token answered $code, want 403"
code=$(claim "$setup_token" evil.example) || true
[ "$code" = 421 ] || fail "POST /setup through the Host evil.example (DNS rebinding) answered $code, want 421"
code=$(claim "$setup_token") || true
[ "$code" = 303 ] || fail "POST /setup with the setup token answered $code, want 303"
[ ! -e /var/lib/flowbox/setup-token ] || fail "the setup token file is still there after setup"
code=$(https -s -o /dev/null -w '%{http_code}' -d username=admin -d "password=$password" "$web/login") || true
[ "$code" = 303 ] || fail "admin login with the password chosen on /setup answered $code"
token=$(runuser -u flowbox -- /usr/bin/flowbox token create --name deb-test --config /etc/flowbox/flowbox.yaml 2>"$work/err") ||
	fail "flowbox token create as flowbox failed: $(cat "$work/err")"
sent=$("$bin" simulate --target "$nf" --rate 2000 --duration 2s --json 2>/dev/null | sed -n 's/.*"flows":\([0-9]*\).*/\1/p')
[ "${sent:-0}" -gt 1000 ] || fail "flowbox simulate sent ${sent:-no} flows"
want=$((sent * 95 / 100))
i=0
until [ "$(stored)" -ge "$want" ]; do
	i=$((i + 1))
	[ "$i" -le 40 ] || fail "$(stored) flows stored of $sent sent"
	sleep 0.5
done
[ "$(apiflows)" -gt 0 ] || fail "the API lists no flows"
log "sent $sent flows, stored $(stored)"

log "flowbox backup while serving"
install -d -o flowbox -g flowbox -m 0700 "$work/backups"
runuser -u flowbox -- /usr/bin/flowbox backup --config /etc/flowbox/flowbox.yaml "$work/backups/b1" >/dev/null ||
	fail "flowbox backup failed"
[ "$(stored --data-dir "$work/backups/b1")" -ge "$want" ] || fail "the backup lacks the flows"
[ "$(stat -c %a "$work/backups/b1/flowbox.key")" = 600 ] || fail "the backup's key file is not 0600"
stop
before=$(stored)

log "upgrade to a higher version keeps data and the edited config"
sed -i 's/^  #level: info$/  level: debug/' /etc/flowbox/flowbox.yaml
grep -q '^  level: debug$' /etc/flowbox/flowbox.yaml || fail "could not edit the config"
echo 'FLOWBOX_OPTS=""  # edited' >>/etc/default/flowbox
upstream=${version%-*}
DEB_VERSION="$upstream+upgradetest" packaging/build-deb.sh "$arch" "$bin" >/dev/null ||
	fail "could not build the upgrade package"
deb2=dist/flowbox_${upstream}+upgradetest-1_${arch}.deb
dpkg -i "$deb2" </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i (upgrade) failed"; }
rm -f "$deb2"
[ "$(dpkg-query -W -f '${Version}' flowbox)" = "$upstream+upgradetest-1" ] || fail "the upgrade did not install"
grep -q '^  level: debug$' /etc/flowbox/flowbox.yaml || fail "the upgrade lost the config edit"
grep -q '# edited$' /etc/default/flowbox || fail "the upgrade lost the /etc/default/flowbox edit"
[ "$(id -u flowbox)" = "$uid" ] || fail "the upgrade changed the flowbox uid"
[ "$(stat -c '%U:%G %a' /etc/flowbox/flowbox.yaml)" = "root:flowbox 640" ] ||
	fail "after upgrade /etc/flowbox/flowbox.yaml is $(stat -c '%U:%G %a' /etc/flowbox/flowbox.yaml)"
[ "$(stored)" -ge "$before" ] || fail "after upgrade $(stored) flows stored, before $before"
runuser -u flowbox -- /usr/bin/flowbox check --dump --config /etc/flowbox/flowbox.yaml | grep -q '^    level: debug$' ||
	fail "the edited log level is not in effect after upgrade"
serve "$password"
[ "$(apiflows)" -gt 0 ] || fail "after upgrade the token lists no flows"
stop

log "dpkg --remove keeps data and config"
dpkg --remove flowbox </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --remove failed"; }
[ ! -e /usr/bin/flowbox ] || fail "remove left /usr/bin/flowbox"
[ -f /var/lib/flowbox/flowbox.db ] || fail "remove deleted the database"
[ -f /etc/flowbox/flowbox.yaml ] || fail "remove deleted the config"

log "dpkg --purge leaves nothing behind"
dpkg-deb --contents "$deb" | awk '{print $NF}' | sed 's|^\./|/|' | grep -v '/$' >"$work/files"
dpkg --purge flowbox </dev/null >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge failed"; }
dpkg-query -W flowbox >/dev/null 2>&1 && fail "dpkg still knows flowbox after purge"
while read -r f; do
	[ ! -e "$f" ] || fail "purge left $f"
done <"$work/files"
for f in /var/lib/flowbox /etc/flowbox /etc/default/flowbox \
	/etc/systemd/system/multi-user.target.wants/flowbox.service /etc/systemd/system/flowbox.service \
	/var/lib/systemd/deb-systemd-helper-enabled/flowbox.service.dsh-also \
	/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/flowbox.service \
	/var/lib/systemd/deb-systemd-helper-masked/flowbox.service; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || fail "purge left $f"
done
getent passwd flowbox >/dev/null && fail "purge left the user flowbox"
getent group flowbox >/dev/null && fail "purge left the group flowbox"
dpkg-statoverride --list | grep -q flowbox && fail "purge left a dpkg-statoverride"
left=$(find /etc /usr /var /run -xdev \( -path /var/lib/containers -o -path /var/cache -o -path "$work" \) -prune -o \
	\( -uid "$uid" -o -gid "$gid" \) -print 2>/dev/null | head -5)
[ -z "$left" ] || fail "purge left files owned by the old flowbox uid/gid: $left"
echo "PASS: $deb"
