#!/usr/bin/python3
"""Crash soak (not part of make check): CYCLES times, start outboxd, stream
submissions from several clients (two over the Unix socket with smtplib,
one with the sendmail command) against an upstream that tempfails some
messages, kill -9 outboxd at a random moment, and start it again on the
same spool.  At the end every acknowledged message (250 / exit 0) is
compared with what the upstream received: none may be lost; duplicates
are counted and may only be messages that were in flight at a kill.

    scripts/soak.py [--cycles 100] [--build build] [--seed N]

Run as root or not; uses only 127.0.0.1 and Unix sockets."""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    os.environ["OUTBOX_BUILD"] = os.path.abspath(args.build)
    import conftest
    import upstream as upstream_mod
    rnd = random.Random(args.seed)

    base = tempfile.mkdtemp(prefix="outbox-soak-")
    os.chmod(base, 0o755)
    certs = upstream_mod.make_certs(os.path.join(base, "certs"))
    up = upstream_mod.Upstream(certs, tls="none", chunking=True).start()
    os.makedirs(os.path.join(base, "d"))
    os.chmod(os.path.join(base, "d"), 0o755)
    d = conftest.Daemon(os.path.join(base, "d"), extra={
        "relay": {"host": "127.0.0.1", "port": str(up.port), "tls": "none", "workers": "2",
                  "timeout": "10s"},
        "queue": {"retry_min": "1s", "retry_max": "2s"},
        "listen": {"max_sessions_per_user": "100"}})

    acked = {}          # message tag -> cycle it was acknowledged in
    lock = threading.Lock()
    stop_tempfail = threading.Event()

    def tempfail_sometimes():     # about one message in five is refused once
        while not stop_tempfail.is_set():
            if rnd.random() < 0.2:
                with up.lock:
                    up.tempfail_first = 1
            time.sleep(0.05)

    threading.Thread(target=tempfail_sometimes, daemon=True).start()

    def client(kind, cycle, idx, stop):
        n = 0
        while not stop.is_set():
            tag = "soak-%d-%s%d-%d" % (cycle, kind, idx, n)
            n += 1
            body = ("Subject: %s\r\n\r\n%s\r\n" % (tag, "x" * rnd.randint(10, 3000))).encode()
            try:
                if kind == "smtp":
                    with d.smtp(timeout=5) as s:
                        s.sendmail("soak@s.example", ["%s@r.example" % tag], body)
                else:
                    r = d.sendmail(["-f", "soak@s.example", "%s@r.example" % tag],
                                   body.replace(b"\r\n", b"\n"), timeout=10)
                    if r.returncode != 0:
                        continue
            except Exception:
                continue        # not acknowledged: not counted
            with lock:
                acked[tag] = cycle

    t0 = time.time()
    for cycle in range(args.cycles):
        d.start()
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(k, cycle, i, stop))
                   for i, k in enumerate(["smtp", "smtp", "sendmail"])]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 2.0))
        d.proc.send_signal(signal.SIGKILL)      # while they stream
        d.proc.wait()
        d.logf.close()
        stop.set()
        for t in threads:
            t.join(20)
        if cycle % 10 == 9:
            print("cycle %d: %d acknowledged, %d received" % (cycle + 1, len(acked),
                                                            len(up.messages)), flush=True)

    stop_tempfail.set()
    d.start()                                   # drain what is left
    deadline = time.time() + 120
    while d.queue_ids() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    d.stop()
    up.stop()

    received = {}
    for m in up.messages:
        tag = re.search(rb"Subject: (soak-[\w-]+)", m.data).group(1).decode()
        received[tag] = received.get(tag, 0) + 1
    lost = sorted(t for t in acked if t not in received)
    dups = {t: c for t, c in received.items() if c > 1}
    unacked = [t for t in received if t not in acked]
    corrupt = os.listdir(os.path.join(d.spool, "corrupt"))
    print("soak: %d cycles in %.0f s, seed %d" % (args.cycles, time.time() - t0, args.seed))
    print("acknowledged %d, received %d distinct (%d in all)" % (
        len(acked), len(received), sum(received.values())))
    print("lost %d, duplicated %d (extra copies %d), received without acknowledgement %d "
          "(in flight at a kill), corrupt %d, left in queue %d" % (
              len(lost), len(dups), sum(c - 1 for c in dups.values()), len(unacked),
              len(corrupt), len(d.queue_ids())))
    if lost:
        print("LOST:", lost[:20])
    shutil.rmtree(base, ignore_errors=True)
    return 1 if lost or corrupt else 0


if __name__ == "__main__":
    sys.exit(main())
