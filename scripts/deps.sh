#!/bin/sh
# deps.sh - make sure the Debian packages (12 or 13: names that exist on
# both, no version pins) that outbox needs to build,
# test and demonstrate are installed, and that the system user the daemon
# runs as exists.  As root it installs what is missing; as another user
# it says what to install and fails.  With arguments, those packages
# instead of the list below (make deb's tools: scripts/deb.sh).
set -eu

PKGS="pkg-config libuv1-dev libmbedtls-dev libinih-dev libmagic-dev libcmocka-dev libcurl4-openssl-dev libjansson-dev \
s-nail git git-email libmailtools-perl \
python3-pytest python3-pytest-xdist python3-aiosmtpd python3-fusepy python3-prometheus-client python3-seccomp openssl curl procps mandoc strace systemd \
clang libclang-rt-dev"
[ $# -gt 0 ] && PKGS="$*"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
# A|B: either will do (a package one release has and the other has not,
# e.g. systemd-dev, which Debian 13 split from systemd); the first that
# the archive has is installed.
missing=""
for p in $PKGS; do
	have=""
	for alt in $(echo "$p" | tr '|' ' '); do
		installed "$alt" && have=1
	done
	[ -n "$have" ] || missing="$missing $p"
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "outbox needs these Debian packages:$missing" >&2
		echo "install them with: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	pick=""
	for p in $missing; do
		for alt in $(echo "$p" | tr '|' ' '); do
			if apt-cache policy "$alt" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
				pick="$pick $alt"
				continue 2
			fi
		done
		pick="$pick ${p%%|*}"	# none known: apt says why
	done
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $pick >/dev/null
fi

# The daemon's user, as systemd/outbox.sysusers declares it.
if [ "$(id -u)" -eq 0 ] && ! getent passwd outbox >/dev/null; then
	groupadd --system outbox 2>/dev/null || true
	useradd --system --gid outbox --home-dir /var/spool/outbox --no-create-home \
		--shell /usr/sbin/nologin --comment "outbox mail relay" outbox
	echo "created system user outbox"
fi
exit 0
