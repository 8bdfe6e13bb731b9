#!/bin/sh
# deb.sh - make deb: build the Debian package from a clean copy of the
# tracked files (what git would check out, with their working-tree
# contents) in build-deb/outbox-VERSION/, with dpkg-buildpackage, and
# hold it to lintian: no error and no warning (overrides only with a
# reason, in debian/*.lintian-overrides).  As root it installs the
# packaging tools and the build dependencies that are missing (deps.sh).
set -eu
cd "$(dirname "$0")/.."
TOP=$PWD
OUT=$TOP/build-deb

# shellcheck disable=SC2086
PKGS="build-essential dpkg-dev debhelper lintian pkgconf libuv1-dev libmbedtls-dev libinih-dev libmagic-dev \
libcurl4-openssl-dev libjansson-dev libcmocka-dev git"
scripts/deps.sh $PKGS

VERSION=$(dpkg-parsechangelog -S Version)
ARCH=$(dpkg-architecture -q DEB_HOST_ARCH)
SRC=$OUT/outbox-$VERSION
rm -rf "$OUT"
mkdir -p "$SRC"
# the tracked files (and new ones git does not ignore): no build/ or run/
git -c safe.directory='*' ls-files -z --cached --others --exclude-standard | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
	tar --null -T - -cf - | tar -xf - -C "$SRC"
echo "== dpkg-buildpackage in $SRC"
(cd "$SRC" && dpkg-buildpackage -us -uc -b) > "$OUT/build.log" 2>&1 || {
	tail -40 "$OUT/build.log"
	echo "make deb: dpkg-buildpackage failed (log: $OUT/build.log)" >&2
	exit 1
}
DEB=$OUT/outbox_${VERSION}_$ARCH.deb
[ -f "$DEB" ] || { echo "make deb: no $DEB" >&2; exit 1; }
echo "== lintian $(basename "$DEB")"
# --fail-on error,warning: any warning fails the build; info tags are shown
lintian --info --display-info --fail-on error,warning "$OUT/outbox_${VERSION}_$ARCH.changes"
echo "lintian: no errors or warnings"
echo "make deb: $DEB"
