#!/bin/sh
# Builds the flowbox container image for one architecture from a static
# binary, with buildah, into dist/flowbox-image_VERSION_ARCH.tar (a docker
# archive: `podman load -i` or `docker load -i`).
#
# usage: packaging/build-image.sh ARCH BINARY
#
# The build runs in a private, temporary container store (vfs driver), so it
# neither needs nor touches the host's container storage configuration. Set
# IMAGE_LOAD=1 to also load the result into the default podman store as
# localhost/flowbox:VERSION and localhost/flowbox:latest.
set -eu
cd "$(dirname "$0")/.."

arch=${1:?usage: build-image.sh ARCH BINARY}
bin=${2:?usage: build-image.sh ARCH BINARY}
version=${DEB_VERSION:-$(packaging/version.sh)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
tag=$(printf '%s' "$version" | tr '~+' '--')
out=dist/flowbox-image_${version}_${arch}.tar

die() { echo "build-image.sh: $*" >&2; exit 1; }
command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
[ -f "$bin" ] || die "$bin is missing (make build / make build-arm64)"
packaging/check-binary.sh "$arch" "$bin"
ca=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca" ] || die "$ca is missing (apt-get install ca-certificates)"

ctx=dist/image-$arch
rm -rf "$ctx"
mkdir -p "$ctx/doc" "$ctx/skel/tmp" "$ctx/skel/var/lib/flowbox"
chmod 1777 "$ctx/skel/tmp"
chmod 0755 "$ctx/skel/var" "$ctx/skel/var/lib"
chmod 0750 "$ctx/skel/var/lib/flowbox"
# Owners are set in the archive, so no root is needed to build it.
tar -C "$ctx/skel" -cf "$ctx/skeleton.tar" --numeric-owner --owner=0 --group=0 \
	--no-recursion ./tmp ./var ./var/lib
tar -C "$ctx/skel" -rf "$ctx/skeleton.tar" --numeric-owner --owner=65532 --group=65532 \
	--no-recursion ./var/lib/flowbox
rm -rf "$ctx/skel"
cp "$bin" "$ctx/flowbox"
cp "$ca" "$ctx/ca-certificates.crt"
cp packaging/container/passwd packaging/container/group packaging/container/flowbox.yaml "$ctx/"
cp packaging/debian/copyright enrich/geodata/ATTRIBUTION.md "$ctx/doc/"
cp configs/flowbox.yaml "$ctx/doc/flowbox.yaml.example"
chmod 0755 "$ctx/flowbox"
chmod 0644 "$ctx"/passwd "$ctx"/group "$ctx"/flowbox.yaml "$ctx"/ca-certificates.crt "$ctx"/doc/*

store=$(mktemp -d "${TMPDIR:-/tmp}/flowbox-buildah.XXXXXX")
trap 'rm -rf "$store"' EXIT
bh() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }

name=localhost/flowbox:$tag
echo "== buildah bud $name ($arch)"
bh bud --quiet --format docker --arch "$arch" --os linux \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" \
	--timestamp "$(git log -1 --format=%ct 2>/dev/null || date +%s)" \
	-f Containerfile -t "$name" "$ctx" >/dev/null
rm -f "$out"
bh push --quiet "$name" "docker-archive:$out:$name" >/dev/null
rm -rf "$ctx"
echo "built $out ($(du -h "$out" | cut -f1))"

if [ "${IMAGE_LOAD:-0}" = 1 ]; then
	command -v podman >/dev/null || die "IMAGE_LOAD=1 needs podman"
	podman load -q -i "$out"
	podman tag "$name" localhost/flowbox:latest
	echo "loaded as $name and localhost/flowbox:latest"
fi
