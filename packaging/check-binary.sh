#!/bin/sh
# Fails unless BINARY is a statically linked Linux executable for ARCH
# (amd64 or arm64), as `make build` / `make build-arm64` produce.
# usage: packaging/check-binary.sh ARCH BINARY
set -eu
arch=${1:?usage: check-binary.sh ARCH BINARY}
bin=${2:?usage: check-binary.sh ARCH BINARY}
case $arch in
amd64) machine='x86-64' ;;
arm64) machine='ARM aarch64' ;;
*) echo "check-binary.sh: unsupported architecture $arch" >&2; exit 1 ;;
esac
desc=$(file -b "$bin")
case $desc in
*"ELF 64-bit"*"$machine"*"statically linked"*) ;;
*) echo "check-binary.sh: $bin is not a static $arch executable: $desc" >&2; exit 1 ;;
esac
