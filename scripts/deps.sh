#!/bin/sh
# deps.sh - make sure the Debian 12 packages that outbox needs to build,
# test and demonstrate are installed, and that the system user the daemon
# runs as exists.  As root it installs what is missing; as another user
# it says what to install and fails.  With arguments, those packages
# instead of the list below (make deb's tools: scripts/deb.sh).
set -eu

PKGS="pkg-config libuv1-dev libmbedtls-dev libinih-dev libmagic-dev libcmocka-dev libcurl4-openssl-dev libjansson-dev \
s-nail git git-email libmailtools-perl \
python3-pytest python3-aiosmtpd python3-fusepy python3-prometheus-client python3-seccomp openssl curl procps mandoc strace systemd \
clang libclang-rt-14-dev"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
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
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The daemon's user, as systemd/outbox.sysusers declares it.
if [ "$(id -u)" -eq 0 ] && ! getent passwd outbox >/dev/null; then
	groupadd --system outbox 2>/dev/null || true
	useradd --system --gid outbox --home-dir /var/spool/outbox --no-create-home \
		--shell /usr/sbin/nologin --comment "outbox mail relay" outbox
	echo "created system user outbox"
fi
exit 0
