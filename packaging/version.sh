#!/bin/sh
# Prints the Debian-safe upstream version of the source tree, from git:
#   tag v1.2.3 on HEAD          -> 1.2.3
#   3 commits after v1.2.3      -> 1.2.3+git20261127145500.3.c1b69c0
#   no tag yet                  -> 0.1.0~git20261127145500.c1b69c0
#   uncommitted changes         -> ... with ".dirty" appended
# The timestamp is the commit time (UTC), so later commits sort higher and
# apt upgrades snapshot to snapshot; "~" sorts before the 0.1.0 release.
# Outside a git checkout it prints the base version with "~unknown".
set -eu
cd "$(dirname "$0")/.."
base=$(cat packaging/base-version)
if ! desc=$(git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null); then
	echo "${base}~unknown"
	exit 0
fi
stamp=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
sha=$(git rev-parse --short=7 HEAD)
dirty=
case $desc in *-dirty) dirty=.dirty; desc=${desc%-dirty} ;; esac
case $desc in
v[0-9]*-[0-9]*-g[0-9a-f]*)
	tag=${desc%-*-g*}
	n=${desc#"$tag"-}
	n=${n%%-*}
	v="${tag#v}+git${stamp}.${n}.${sha}${dirty}"
	;;
v[0-9]*)
	if [ -n "$dirty" ]; then
		v="${desc#v}+git${stamp}.0.${sha}${dirty}"
	else
		v="${desc#v}"
	fi
	;;
*)
	v="${base}~git${stamp}.${sha}${dirty}"
	;;
esac
# A tag such as v1.0-rc1 gives "-", which Debian reserves for the revision.
v=$(printf '%s' "$v" | tr -- - '~')
if ! printf '%s\n' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	echo "version.sh: $v is not a Debian upstream version (tag: $desc)" >&2
	exit 1
fi
echo "$v"
