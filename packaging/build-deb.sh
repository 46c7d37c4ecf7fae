#!/bin/sh
# Builds dist/flowbox_VERSION-1_ARCH.deb from a static binary with nfpm
# (pinned, run with `go run`, so it stays out of the product's go.mod).
#
# usage: packaging/build-deb.sh ARCH BINARY
#
# DEB_VERSION overrides the upstream version (default: packaging/version.sh).
# The package's changelog is packaging/debian/changelog, with an entry for
# this snapshot on top when the version is not a release listed there.
set -eu
cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
arch=${1:?usage: build-deb.sh ARCH BINARY}
bin=${2:?usage: build-deb.sh ARCH BINARY}
version=${DEB_VERSION:-$(packaging/version.sh)}
release=1
full=$version-$release
out=dist/flowbox_${full}_${arch}.deb

die() { echo "build-deb.sh: $*" >&2; exit 1; }
[ -f "$bin" ] || die "$bin is missing (make build / make build-arm64)"
packaging/check-binary.sh "$arch" "$bin"
printf '%s\n' "$version" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$' ||
	die "DEB_VERSION $version is not a Debian upstream version"

# Reproducible: file times and the snapshot entry come from the commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

stage=dist/deb-$arch
rm -rf "$stage"
mkdir -p "$stage"
top=$(sed -n '1s/^flowbox (\([^)]*\)).*/\1/p' packaging/debian/changelog)
{
	if [ "$top" != "$full" ]; then
		sha=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
		date=$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S +0000')
		maint=$(sed -n 's/^maintainer: *//p' packaging/nfpm.yaml)
		printf 'flowbox (%s) UNRELEASED; urgency=medium\n\n' "$full"
		printf '  * Snapshot of git commit %s.\n\n' "$sha"
		printf ' -- %s  %s\n\n' "$maint" "$date"
	fi
	cat packaging/debian/changelog
} | gzip -9n >"$stage/changelog.Debian.gz"
gzip -9n <packaging/man/flowbox.1 >"$stage/flowbox.1.gz"
# The shipped configuration with data-dir set: the default depends on the
# working directory (./data beside a go.mod), and commands run by hand as
# the flowbox user must find the service's database wherever they are run.
sed 's|^#data-dir: /var/lib/flowbox$|data-dir: /var/lib/flowbox  # set by the package (the unit'"'"'s StateDirectory)|' \
	configs/flowbox.yaml >"$stage/flowbox.yaml"
grep -q '^data-dir: /var/lib/flowbox ' "$stage/flowbox.yaml" ||
	die "configs/flowbox.yaml has no '#data-dir: /var/lib/flowbox' line to set"

mkdir -p dist
rm -f "$out"
DEB_ARCH=$arch DEB_VERSION=$version FLOWBOX_BINARY=$bin DEB_STAGE=$stage \
	go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$out" >/dev/null ||
	die "nfpm failed"
rm -rf "$stage"
[ "$(dpkg-deb --field "$out" Version)" = "$full" ] || die "$out has version $(dpkg-deb --field "$out" Version), want $full"
echo "built $out"
