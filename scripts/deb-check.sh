#!/bin/bash
# deb-check.sh - make deb-check: the package built by `make deb`, as an
# administrator meets it, in a pristine tree of the Debian release it was
# built on, 12 or 13 (debootstrap --variant=minbase, cached as a tarball;
# unpacked afresh for each run):
#
#   nullmailer installed first, then the .deb: nullmailer is replaced
#   (Conflicts/Replaces mail-transport-agent), the outbox user, the spool
#   and the set-group-ID outbox command are made; sendmail -bi works and a
#   message from a user outside group outbox waits in pickup/ with no
#   daemon running; outboxd started as root (there is no systemd in a
#   chroot) runs as outbox and delivers it over verified STARTTLS and AUTH
#   to an upstream on this host's loopback; an edited configuration
#   survives a reinstall; dpkg -r leaves the configuration and the queue;
#   a purge with mail queued is refused, a forced one removes everything;
#   and nullmailer can take the place back.
#
# Then the same package under a real systemd (a second tree booted with
# systemd-nspawn): postinst starts both units, outboxd runs hardened
# (no capabilities, no new privileges, seccomp) and says READY and
# STATUS, reloads, delivers through the socket systemd holds, and mail
# sent while the service is stopped starts it through the socket.  Where
# no container can boot (no cgroup file system, say) that part is
# skipped and says why; everything else must pass.
#
# Needs root (debootstrap, chroot, mount).  Every check prints "ok" or
# "FAIL"; the exit status is 1 if any failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
PY=/usr/bin/python3
CACHE=${DEB_CHECK_CACHE:-/var/tmp/outbox-deb-check}
MIRROR=${DEB_CHECK_MIRROR:-http://deb.debian.org/debian}
# the tree is of the release this host runs (the package was built here:
# its dependencies are this release's)
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
IMG=$CACHE/$SUITE-minbase.tar
FAILED=0

say() { printf 'deb-check: %s\n' "$*"; }
die() { say "$*" >&2; exit 2; }
ok() { printf '  ok    %s\n' "$1"; }
bad() { printf '  FAIL  %s\n' "$1"; FAILED=1; }
# check DESCRIPTION COMMAND...: the command (run here) must succeed
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }
# in CMD: a shell command line inside the tree, as root, clean environment
in_root() {
	chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive ${EXTRA_ENV:-} /bin/sh -c "$1"
}
# is DESCRIPTION WANT CMD: the command's output inside the tree must be WANT
is() {
	local got
	got=$(in_root "$3" 2>&1)
	if [ "$got" = "$2" ]; then ok "$1"; else bad "$1 (want '$2', got '$got')"; fi
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
DEB=$(ls -t build-deb/outbox_*.deb 2>/dev/null | head -1)
[ -n "$DEB" ] || die "no build-deb/outbox_*.deb: run make deb"
scripts/deps.sh >/dev/null || die "scripts/deps.sh failed"

# ---- the pristine tree ----
if [ ! -s "$IMG" ]; then
	command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null ||
		die "cannot install debootstrap"
	mkdir -p "$CACHE"
	say "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached in $IMG)"
	rm -rf "$CACHE/build"
	debootstrap --variant=minbase "$SUITE" "$CACHE/build" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	tar -C "$CACHE/build" -cf "$IMG.tmp" . && mv "$IMG.tmp" "$IMG" && rm -rf "$CACHE/build"
fi
WORK=$(mktemp -d /var/tmp/outbox-deb-check.XXXXXX)
ROOT=$WORK/root
MOUNTS=()
UPSTREAM=
cleanup() {
	local p l
	for p in /proc/[0-9]*; do       # whatever still runs in the tree
		l=$(readlink "$p/root" 2>/dev/null) || continue
		case $l in "$ROOT" | "$ROOT"/*) kill -KILL "${p#/proc/}" 2>/dev/null ;; esac
	done
	[ -n "$UPSTREAM" ] && kill "$UPSTREAM" 2>/dev/null
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"; done
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
mkdir -p "$ROOT" && tar -xf "$IMG" -C "$ROOT" || die "cannot unpack $IMG"
mnt() { mount "$@" && MOUNTS+=("${@: -1}"); }
mnt -t proc proc "$ROOT/proc" && mnt --bind /dev "$ROOT/dev" && mnt --bind /dev/pts "$ROOT/dev/pts" &&
	mnt -t sysfs sysfs "$ROOT/sys" || die "cannot mount in $ROOT"
rm -f "$ROOT/etc/resolv.conf" && : >"$ROOT/etc/resolv.conf" && mnt --bind "$(readlink -f /etc/resolv.conf)" "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d" && chmod 755 "$ROOT/usr/sbin/policy-rc.d"
apt-config dump 2>/dev/null | grep -E '^Acquire::(https?|ftp)::Proxy' >"$ROOT/etc/apt/apt.conf.d/90host" || true
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
cp "$DEB" "$ROOT/tmp/" && PKG=/tmp/$(basename "$DEB")

# ---- an upstream on this host's loopback: STARTTLS with a test CA, AUTH ----
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$PY tests/integration/upstream.py --port "$PORT" --certs "$WORK/certs" --user deb --password deb-secret \
	--maildir "$WORK/mail" >"$WORK/upstream.log" 2>&1 &
UPSTREAM=$!
for _ in $(seq 100); do grep -q listening "$WORK/upstream.log" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$WORK/upstream.log" || die "the upstream did not start: $(cat "$WORK/upstream.log")"
# the real, effective, saved and fs uids of the tree's outboxd processes
# (read here: /proc is shared, and other outboxd may run on this host)
outboxd_uids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = outboxd ] && [ "$(readlink "$p/root")" = "$ROOT" ] &&
			awk '/^Uid:/ { print $2, $3, $4, $5 }' "$p/status"
	done | sort -u
}
delivered() { ls "$WORK/mail" 2>/dev/null | wc -l; }
wait_delivered() { for _ in $(seq 200); do [ "$(delivered)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }

say "tree $ROOT, package $(basename "$DEB"), upstream 127.0.0.1:$PORT"
in_root "apt-get update -qq" >"$WORK/apt.log" 2>&1 || die "apt-get update failed: $(tail -5 "$WORK/apt.log")"

echo "== nullmailer first"
in_root "apt-get install -y -qq nullmailer" >>"$WORK/apt.log" 2>&1 || die "cannot install nullmailer"
is "/usr/sbin/sendmail is nullmailer's" "nullmailer: /usr/sbin/sendmail" "dpkg-query -S /usr/sbin/sendmail"

echo "== apt-get install ./$(basename "$DEB")"
if in_root "apt-get install -y -qq $PKG" >"$WORK/install.log" 2>&1; then ok "installed"; else
	bad "installed: $(tail -15 "$WORK/install.log")"; fi
is "nullmailer is removed" "deinstall ok config-files" "dpkg-query -W -f='\${Status}' nullmailer"
is "/usr/sbin/sendmail is outbox's" "outbox: /usr/sbin/sendmail" "dpkg-query -S /usr/sbin/sendmail"
is "sendmail, mailq and /usr/lib/sendmail are links" "../bin/outbox outbox ../sbin/sendmail" \
	"echo \$(readlink /usr/sbin/sendmail) \$(readlink /usr/bin/mailq) \$(readlink /usr/lib/sendmail)"
is "the outbox user (sysusers)" "/var/spool/outbox:/usr/sbin/nologin" "getent passwd outbox | cut -d: -f6-"
is "outbox is set-group-ID outbox (dpkg-statoverride)" "root outbox 2755 /usr/bin/outbox" \
	"dpkg-statoverride --list /usr/bin/outbox"
is "... and so on disk" "root:outbox 2755" "stat -c '%U:%G %a' /usr/bin/outbox"
is "the spool (tmpfiles)" "outbox:outbox 710 outbox:outbox 2770 outbox:outbox 700" \
	"stat -c '%U:%G %a' /var/spool/outbox /var/spool/outbox/pickup /var/spool/outbox/queue | xargs"
is "the configuration is a conffile" "/etc/outbox/outbox.conf" \
	"dpkg-query -W -f='\${Conffiles}' outbox | awk '{print \$1}' | xargs"
is "the configuration is root:outbox 0640 (readable by the daemon and the set-group-ID command only)" \
	"root:outbox 640 root outbox 640 /etc/outbox/outbox.conf" \
	"echo \$(stat -c '%U:%G %a' /etc/outbox/outbox.conf) \$(dpkg-statoverride --list /etc/outbox/outbox.conf)"
is "the units are enabled" "enabled enabled" \
	"systemctl is-enabled outboxd.service outboxd.socket 2>/dev/null | xargs"
is "the example configuration is valid" "0" "outboxd -t >/dev/null 2>&1; echo \$?"
is "man pages" "mailq.1.gz outbox.1.gz outbox.conf.5.gz outboxd.8.gz sendmail.8.gz" \
	"cd /usr/share/man && ls man1/outbox.1.gz man1/mailq.1.gz man8/sendmail.8.gz man8/outboxd.8.gz man5/outbox.conf.5.gz | xargs -n1 basename | sort | xargs"

echo "== sendmail with no daemon running"
is "sendmail -bi" "0" "sendmail -bi; echo \$?"
is "a message from nobody waits in pickup/" "0" \
	"printf 'Subject: deb-check 1\n\nqueued while outboxd was down\n' | su -s /bin/sh nobody -c '/usr/sbin/sendmail -f nobody@deb.example rcpt@dest.example'; echo \$?"
is "... one file, group outbox" "1 outbox" \
	"echo \$(ls /var/spool/outbox/pickup/new | wc -l) \$(stat -c %G /var/spool/outbox/pickup/new/*)"

echo "== configured, outboxd delivers"
cp "$WORK/certs/ca.pem" "$ROOT/etc/outbox/upstream-ca.pem"
in_root "umask 027 && echo deb-secret > /etc/outbox/password && chgrp outbox /etc/outbox/password"
cat >"$ROOT/etc/outbox/outbox.conf" <<EOF
; edited by deb-check
[relay]
host = 127.0.0.1
port = $PORT
tls = starttls
ca_file = /etc/outbox/upstream-ca.pem
user = deb
password_file = /etc/outbox/password

[queue]
retry_min = 2s
EOF
is "outboxd -t on the edited file" "0" "outboxd -t; echo \$?"
in_root "outboxd >/var/log/outboxd.log 2>&1 &"
if wait_delivered 1; then ok "the waiting message reached the upstream"; else
	bad "the waiting message reached the upstream: $(in_root 'cat /var/log/outboxd.log' | tail -5)"; fi
if grep -q "from=<nobody@deb.example> to=<rcpt@dest.example> tls=TLSv1.[23] auth=deb " "$WORK/upstream.log"; then
	ok "... with its envelope, over TLS, authenticated"; else bad "... envelope: $(grep received "$WORK/upstream.log")"; fi
U=$(in_root "id -u outbox")
if [ "$(outboxd_uids)" = "$U $U $U $U" ]; then ok "outboxd runs as outbox (uid $U)"; else
	bad "outboxd runs as outbox (want uid $U, got '$(outboxd_uids)')"; fi
is "sendmail over the socket" "0" \
	"printf 'Subject: deb-check 2\n\nover the socket\n' | su -s /bin/sh nobody -c '/usr/sbin/sendmail -f nobody@deb.example rcpt2@dest.example'; echo \$?"
if wait_delivered 2; then ok "... delivered"; else bad "... delivered"; fi
is "mailq: the queue is empty" "Mail queue is empty" "mailq | tail -1"
in_root 'p=$(cat /var/spool/outbox/lock); kill -TERM $p; for i in $(seq 50); do kill -0 $p 2>/dev/null || exit 0; sleep 0.1; done'
if [ -z "$(outboxd_uids)" ]; then ok "outboxd stopped"; else bad "outboxd stopped"; fi

echo "== reinstall keeps the edited configuration"
in_root "dpkg -i $PKG" >"$WORK/reinstall.log" 2>&1 && ok "dpkg -i again" || bad "dpkg -i again: $(tail -5 "$WORK/reinstall.log")"
is "the edited configuration stayed" "; edited by deb-check" "head -1 /etc/outbox/outbox.conf"

echo "== dpkg -r"
in_root "printf 'Subject: deb-check 3\n\nleft in the queue\n' | /usr/sbin/sendmail -f root@deb.example rcpt3@dest.example"
is "a message waits" "1" "ls /var/spool/outbox/pickup/new | wc -l"
in_root "dpkg -r outbox" >"$WORK/remove.log" 2>&1 && ok "dpkg -r outbox" || bad "dpkg -r outbox: $(tail -5 "$WORK/remove.log")"
is "the package is removed, its config kept" "deinstall ok config-files" "dpkg-query -W -f='\${Status}' outbox"
is "/usr/sbin/sendmail is gone" "no" "test -e /usr/sbin/sendmail && echo yes || echo no"
is "the configuration stayed" "; edited by deb-check" "head -1 /etc/outbox/outbox.conf"
is "the queue stayed" "1" "ls /var/spool/outbox/pickup/new | wc -l"

echo "== dpkg -P"
in_root "dpkg -P outbox" >"$WORK/purge.log" 2>&1 && bad "a purge with mail queued is refused" ||
	ok "a purge with mail queued is refused"
if grep -q "1 messages are still queued in /var/spool/outbox: not purging" "$WORK/purge.log"; then
	ok "... saying why"; else bad "... saying why: $(cat "$WORK/purge.log")"; fi
is "... and the message is still there" "1" "ls /var/spool/outbox/pickup/new | wc -l"
EXTRA_ENV=OUTBOX_PURGE=force in_root "dpkg -P outbox" >"$WORK/purge2.log" 2>&1 && ok "OUTBOX_PURGE=force dpkg -P" ||
	bad "OUTBOX_PURGE=force dpkg -P: $(tail -5 "$WORK/purge2.log")"
is "the spool, the state and the configuration are gone" "gone" \
	"test -e /var/spool/outbox -o -e /etc/outbox -o -e /var/lib/outbox && echo left || echo gone"
is "the package is gone" "not-installed" "dpkg-query -W -f='\${db:Status-Status}' outbox 2>/dev/null || echo not-installed"
is "no statoverride is left" "" "dpkg-statoverride --list /usr/bin/outbox; dpkg-statoverride --list /etc/outbox/outbox.conf"

echo "== the place given back"
in_root "apt-get install -y -qq nullmailer" >>"$WORK/apt.log" 2>&1 && ok "nullmailer installs again" ||
	bad "nullmailer installs again"
is "/usr/sbin/sendmail is nullmailer's again" "nullmailer: /usr/sbin/sendmail" "dpkg-query -S /usr/sbin/sendmail"

echo "== under systemd (systemd-nspawn --boot)"
systemd_phase() {
	command -v systemd-nspawn >/dev/null || apt-get install -y -qq systemd-container >/dev/null 2>&1 ||
		{ echo "  SKIP  cannot install systemd-container"; return 0; }
	[ -e /sys/fs/cgroup/cgroup.controllers ] || [ -d /sys/fs/cgroup/unified ] ||
		mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null ||
		{ echo "  SKIP  no cgroup file system for a container here"; return 0; }
	BOX=$WORK/box
	mkdir -p "$BOX" && tar -xf "$IMG" -C "$BOX" || { bad "unpack a second tree"; return 0; }
	cp "$ROOT/etc/apt/sources.list" "$BOX/etc/apt/sources.list"
	cp "$ROOT/etc/apt/apt.conf.d/90host" "$BOX/etc/apt/apt.conf.d/" 2>/dev/null
	cp /etc/resolv.conf "$BOX/etc/resolv.conf" 2>/dev/null
	mount -t proc proc "$BOX/proc" && mount --bind /dev "$BOX/dev" || { bad "mount in the second tree"; return 0; }
	chroot "$BOX" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		/bin/sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd systemd-sysv" \
		>"$WORK/box-apt.log" 2>&1
	local rc=$?
	umount "$BOX/dev" "$BOX/proc"
	[ "$rc" = 0 ] || { bad "systemd in the second tree: $(tail -3 "$WORK/box-apt.log")"; return 0; }
	cp "$DEB" "$BOX/root/"          # (the container's /tmp is its own)
	# nspawn makes its "/" a slave mount: in a chroot (a fresh machine)
	# "/" is no mount point, so it runs in a mount namespace of its own
	# whose "/" is a bind of this one (the same paths, one mount more)
	local nspawn=(systemd-nspawn -q -b -D "$BOX" --register=no --keep-unit -M outbox-deb-check)
	if mountpoint -q /; then
		"${nspawn[@]}" >"$WORK/box-boot.log" 2>&1 &
	else
		mkdir -p "$WORK/slash"
		# (--propagation unchanged: a chroot's "/" cannot be made private;
		# the bind is made private at once so nothing leaves the namespace)
		unshare -m --propagation unchanged /bin/sh -c \
			'mount --rbind / "$0" && mount --make-rprivate "$0" && exec chroot "$0" "$@"' "$WORK/slash" "${nspawn[@]}" \
			>"$WORK/box-boot.log" 2>&1 &
	fi
	NSPAWN=$!
	local leader="" state=""
	for _ in $(seq 240); do
		leader=$(pgrep -P "$NSPAWN" -x systemd)
		[ -n "$leader" ] && state=$(nsenter --target "$leader" --all --root --wd systemctl is-system-running 2>&1)
		case $state in running | degraded) break ;; esac
		sleep 0.5
	done
	case $state in running | degraded) ok "a container booted systemd ($state)" ;; *)
		echo "  SKIP  no container boots here (systemd pid ${leader:-none}: ${state:-no answer}):" \
			"$(tail -2 "$WORK/box-boot.log" | tr '\n' ' ')"
		[ -n "$leader" ] && nsenter --target "$leader" --all --root --wd systemctl list-jobs --no-pager 2>&1 | head -8
		kill "$NSPAWN" 2>/dev/null; return 0 ;;
	esac
	in_box() { nsenter --target "$leader" --all --root --wd /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive /bin/sh -c "$1"; }
	box_is() { local got; got=$(in_box "$3" 2>&1); if [ "$got" = "$2" ]; then ok "$1"; else bad "$1 (want '$2', got '$got')"; fi; }
	in_box "apt-get install -y -qq /root/$(basename "$DEB")" >"$WORK/box-install.log" 2>&1 &&
		ok "installed under systemd" || bad "installed under systemd: $(tail -5 "$WORK/box-install.log")"
	box_is "postinst started both units" "active active" "systemctl is-active outboxd.service outboxd.socket | xargs"
	box_is "... outboxd with systemd's socket" "1" \
		"journalctl -u outboxd -o cat | grep -c 'listening on /run/outbox/outbox.sock (passed by systemd)'"
	box_is "Type=notify: STATUS= reached systemd" "0 messages queued; since start 0 sent, 0 deferred, 0 bounced" \
		"systemctl show -p StatusText --value outboxd"
	box_is "outboxd runs as outbox, no capabilities, no new privileges, seccomp" \
		"$(in_box 'id -u outbox') 0000000000000000 1 2" \
		'p=$(systemctl show -p MainPID --value outboxd); echo $(awk "/^Uid:/{print \$3} /^CapEff:/{print \$2} /^NoNewPrivs:/{print \$2} /^Seccomp:/{print \$2}" /proc/$p/status)'
	cp "$WORK/certs/ca.pem" "$BOX/etc/outbox/upstream-ca.pem"
	in_box "umask 027 && echo deb-secret > /etc/outbox/password && chgrp outbox /etc/outbox/password"
	printf '[relay]\nhost = 127.0.0.1\nport = %s\ntls = starttls\nca_file = /etc/outbox/upstream-ca.pem\nuser = deb\npassword_file = /etc/outbox/password\n' \
		"$PORT" >"$BOX/etc/outbox/outbox.conf"
	box_is "systemctl reload (RELOADING=1, READY=1)" "0 active" \
		"systemctl reload outboxd; echo \$? \$(systemctl is-active outboxd)"
	local before; before=$(delivered)
	box_is "sendmail through the socket systemd holds" "0" \
		"printf 'Subject: deb-check 4\n\nunder systemd\n' | setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/sbin/sendmail -f nobody@deb.example rcpt4@dest.example; echo \$?"
	if wait_delivered $((before + 1)); then ok "... delivered"; else
		bad "... delivered: $(in_box 'journalctl -u outboxd -o cat | tail -5')"; fi
	box_is "systemctl stop outboxd.service leaves the socket listening" "inactive active" \
		"systemctl stop outboxd.service 2>/dev/null; systemctl is-active outboxd.service outboxd.socket | xargs"
	box_is "mail sent meanwhile is taken by the socket" "0" \
		"printf 'Subject: deb-check 5\n\nwhile stopped\n' | /usr/sbin/sendmail -f root@deb.example rcpt5@dest.example; echo \$?"
	if wait_delivered $((before + 2)); then ok "... which started outboxd, and it was delivered"; else
		bad "... delivered after activation: $(in_box 'journalctl -u outboxd -o cat | tail -5')"; fi
	box_is "... outboxd active again" "active" "systemctl is-active outboxd.service"
	box_is "nothing was queued in pickup/ meanwhile" "0" "ls /var/spool/outbox/pickup/new | wc -l"
	in_box "apt-get remove -y -qq outbox" >"$WORK/box-remove.log" 2>&1 && ok "apt-get remove under systemd" ||
		bad "apt-get remove under systemd: $(tail -3 "$WORK/box-remove.log")"
	box_is "... stopped both units" "inactive inactive" "systemctl is-active outboxd.service outboxd.socket | xargs"
	in_box "systemctl poweroff" >/dev/null 2>&1
	for _ in $(seq 40); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.25; done
	kill "$NSPAWN" 2>/dev/null
	return 0
}
systemd_phase

if [ "$FAILED" = 0 ]; then say "every check passed"; else say "some checks FAILED (logs were in $WORK)"; fi
exit "$FAILED"
