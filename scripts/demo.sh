#!/bin/sh
# demo.sh BUILD - outbox end to end on this machine: a local upstream
# (aiosmtpd with STARTTLS and AUTH, certificates made now by openssl),
# outboxd with conf/demo.conf, and one message through sendmail mode,
# from the sendmail command to the upstream's mailbox.
# Everything lives under ./run/ and is stopped at the end.
set -eu
BUILD=${1:-build}
TOP=$(pwd)
RUN="$TOP/run"
PY=/usr/bin/python3

# As root, outboxd drops to the user `outbox`, which must reach ./run/.
if [ "$(id -u)" -eq 0 ] && ! setpriv --reuid=outbox --regid=outbox --clear-groups test -x "$TOP" 2>/dev/null; then
	RUN=/var/tmp/outbox-demo
	echo "demo: $TOP is not reachable by user outbox; using $RUN instead"
fi
rm -rf "$RUN"
mkdir -p "$RUN"
chmod 755 "$RUN"

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "demo-password" > "$RUN/password"
chmod 600 "$RUN/password"
[ "$(id -u)" -eq 0 ] && chown outbox "$RUN/password"
sed -e "s|@RUN@|$RUN|g" -e "s|@PORT@|$PORT|g" conf/demo.conf > "$RUN/demo.conf"

pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "== 1. upstream: aiosmtpd on 127.0.0.1:$PORT with STARTTLS, AUTH and CHUNKING, like Gmail (test CA in $RUN/certs)"
$PY tests/integration/upstream.py --port "$PORT" --certs "$RUN/certs" --user demo \
	--password demo-password --chunking --maildir "$RUN/upstream-mail" > "$RUN/upstream.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 100); do grep -q listening "$RUN/upstream.log" 2>/dev/null && break; sleep 0.1; done
cat "$RUN/upstream.log"

echo
echo "== 2. configuration check: $BUILD/outboxd -t -c $RUN/demo.conf"
"$BUILD/outboxd" -t -c "$RUN/demo.conf" && echo "configuration OK"

echo
echo "== 3. outboxd"
"$BUILD/outboxd" -c "$RUN/demo.conf" > "$RUN/outboxd.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 100); do [ -S "$RUN/sock/outbox.sock" ] && break; sleep 0.1; done
cat "$RUN/outboxd.log"

echo
echo "== 4. a message through sendmail mode (as cron would send it)"
ln -sf "$TOP/$BUILD/outbox" "$RUN/sendmail"
printf 'Subject: outbox demo\nTo: root\n\nHello from the outbox demo.\nA line with a lone dot follows:\n.\nand the end.\n' |
	OUTBOX_CONF="$RUN/demo.conf" "$RUN/sendmail" -i -t -F "Demo Script"
echo "sendmail exit status: $?"
sleep 0.2

echo
echo "== 5. outboxd relays it to the upstream (STARTTLS, AUTH PLAIN)"
for _ in $(seq 100); do grep -q "status=sent" "$RUN/outboxd.log" && break; sleep 0.1; done
grep -hE "\(queued\)|status=|removed" "$RUN/outboxd.log"
grep -h "received" "$RUN/upstream.log"

echo
echo "== 6. the message as the upstream received it ($RUN/upstream-mail)"
cat "$RUN"/upstream-mail/*.eml
echo
echo "queue now: $(find "$RUN/spool/queue" -mindepth 2 -type f | wc -l) messages"
grep -q "status=sent" "$RUN/outboxd.log" || { echo "demo: the message was not delivered" >&2; exit 1; }
echo
echo "demo done; logs and spool are in $RUN"
