"""Local denial of service: no client can make outboxd's memory grow
without bound, one user cannot take every session, a huge corrupt
queue file cannot hold up the start, and a hostile upstream reply is
bounded."""

import os
import select
import socket
import subprocess
import sys
import time

import pytest

from conftest import IS_ROOT, bucket_of
from test_delivery import HostileServer, send


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s" % field)


def flood_without_reading(path, n, total, seconds):
    """n sessions each pipelining `total` octets of EHLO, never reading a
    reply, all at once until sent or `seconds` pass; returns the sockets."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.setblocking(False)
        socks.append(s)
    data = b"EHLO x\r\n" * (total // 8)
    sent = {s: 0 for s in socks}
    deadline = time.time() + seconds
    while time.time() < deadline and any(v < len(data) for v in sent.values()):
        _, ready, _ = select.select([], [s for s in socks if sent[s] < len(data)], [], 0.2)
        for s in ready:
            try:
                sent[s] += s.send(data[sent[s]:sent[s] + 65536])
            except BlockingIOError:
                pass
    return socks


@pytest.mark.slow(11)
@pytest.mark.skipif(os.environ.get("OUTBOX_SAN") == "1", reason="ASan's quarantine keeps freed memory")
def test_pipelining_without_reading_keeps_memory_bounded(make_daemon):
    """100 sessions each pipelining 330 KB of EHLO (25x as many octets of
    replies) without reading any: outboxd stops running their commands at
    its high-water mark instead of buffering megabytes of replies each."""
    daemon = make_daemon(extra={"listen": {"max_sessions_per_user": "200"}})
    pid = daemon.proc.pid
    before = rss_kb(pid)
    socks = flood_without_reading(daemon.socket, 100, 330 * 1024, 10)
    time.sleep(1.0)
    grown_mb = (rss_kb(pid, "VmHWM") - before) / 1024
    print("outboxd grew by %.1f MB" % grown_mb)
    assert grown_mb < 40, "outboxd grew by %.0f MB" % grown_mb
    # a flooding session is still served once it reads
    s = socks[0]
    s.setblocking(True)
    s.settimeout(10)
    got = b""
    while b"250 " not in got:
        got += s.recv(65536)
    for s in socks:
        s.close()
    with daemon.smtp() as c:        # and others are served meanwhile
        assert c.noop()[0] == 250


HOLDER = r"""
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n + 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    socks.append(s)
    print(s.recv(200).split(b" ")[0].decode(), flush=True)
sys.stdin.read()        # hold them until the test is done
"""


@pytest.mark.skipif(not IS_ROOT, reason="needs a second local user")
def test_one_user_cannot_take_every_session(make_daemon, workdir):
    d = make_daemon(extra={"listen": {"max_sessions_per_user": "5"}})
    script = os.path.join(workdir, "holder.py")
    with open(script, "w") as f:
        f.write(HOLDER)
    holder = subprocess.Popen(["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups",
                               sys.executable, script, d.socket, "5"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        codes = [holder.stdout.readline().strip() for _ in range(6)]
        assert codes == [b"220"] * 5 + [b"421"], codes
        assert "more than 5 sessions of this user" in d.log()
        # another user (root) still gets in and submits, while uid 12345 holds its five
        send(d, ["a@r.example"])
        assert len(d.queue_ids()) == 1
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_huge_corrupt_queue_file_does_not_hold_up_the_start(make_daemon):
    """A 35 MB file with a queue file's magic and no end of header: the
    reader stops at its header limit, linearly, and moves it aside."""
    d = make_daemon()
    d.stop()
    path = os.path.join(d.spool, "queue", bucket_of("6B0E000000000001"), "6B0E000000000001")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"outbox-queue 1\narrival 1.0\n")
        chunk = b"rcpt Q <x@y.example>\n" * 50000
        while f.tell() < 35 * 1024 * 1024:
            f.write(chunk)
    if IS_ROOT:
        import pwd
        os.chown(os.path.dirname(path), pwd.getpwnam("outbox").pw_uid, -1)
        os.chown(path, pwd.getpwnam("outbox").pw_uid, -1)
    d.start()
    d.wait_log("no end of the queue file header")    # took minutes once
    assert os.listdir(os.path.join(d.spool, "corrupt")) == ["6B0E000000000001"]
    assert "no end of the queue file header" in d.log()


class LongReplyServer(HostileServer):
    def session(self, conn):
        try:
            conn.sendall(b"220-hello\r\n" * 20000)      # 220 KB of continuation lines
            time.sleep(5)
        except OSError:
            pass


def test_endless_multiline_reply_is_cut_off(make_daemon):
    srv = LongReplyServer("long")
    try:
        d = make_daemon(extra={"relay": {"host": "127.0.0.1", "port": str(srv.port), "tls": "none",
                                         "timeout": "4s"}})
        send(d, ["a@r.example"])
        d.wait_log(r"status=deferred \(protocol error: reply longer than 65536 octets")
        assert "bounced" not in d.log()
    finally:
        srv.close()
