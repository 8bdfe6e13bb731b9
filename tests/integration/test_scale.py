"""A large queue at start (daemon/indexer.c, common/queue.c "LAYOUT" and
"FILE NAME"): outboxd takes and delivers new mail while the old queue is
still being indexed, SIGTERM or kill -9 during the indexing costs
nothing, the schedule of deferred mail survives a restart in the files'
names, and a queue of the flat layout of the release before is taken
over.  A slow disk is made real by strace delaying every getdents64 of
the daemon, so the indexing lasts as long as the test needs; the
figures (how fast, how much memory at a million) are the bench's."""

import collections
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import IS_ROOT, MKQUEUE
from test_commit_steps import NO_LSAN
from test_durability import rss_kb


def mkqueue(d, n, *flags, size=512):
    subprocess.run([MKQUEUE] + list(flags) + [d.spool, str(n), str(size)], check=True)
    if IS_ROOT:
        subprocess.run(["chown", "-R", "outbox:outbox", d.spool], check=True)


def slow_disk(d, delay_ms):
    """Run outboxd under strace: each directory read takes delay_ms."""
    d.prefix = NO_LSAN + ["strace", "-f", "-qq", "-o", "/dev/null", "--seccomp-bpf",
                          "-e", "trace=getdents64",
                          "-e", "inject=getdents64:delay_exit=%d" % (delay_ms * 1000)]


def daemon_pid(d):
    return int(re.findall(r"outboxd\[(\d+)\]", d.log())[-1])


def index_done(d):
    return "queue indexed:" in d.log()


@pytest.mark.slow(15)
def test_new_mail_is_taken_and_delivered_while_100000_are_indexed(relay_daemon):
    d, up = relay_daemon(start=False)
    mkqueue(d, 100000, "--deferred", "3600")     # the backlog waits an hour
    slow_disk(d, 60)                            # 256 buckets: some 30 s of indexing
    d.start()
    r = d.sendmail(["-f", "me@sender.example", "fresh@r.example"], b"Subject: fresh\n\nnew mail\n")
    assert r.returncode == 0, r.stderr
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["fresh@r.example"] and m.data.endswith(b"\r\n\r\nnew mail\r\n")
    assert not index_done(d), "the index was complete before the new mail went"
    d.wait_log(r"fresh@r.example.* status=sent")
    # SIGTERM while the walk is still going: a clean, prompt exit
    t0 = time.time()
    os.kill(daemon_pid(d), signal.SIGTERM)
    assert d.stop() == 0
    assert time.time() - t0 < 5
    assert "queue indexing stopped" in d.log() and not index_done(d)
    # unslowed: every old message is indexed, none sent (they wait)
    d.prefix = []
    d.start()
    d.wait_log(r"queue indexed: 100000 messages found", timeout=60)
    assert len(d.queue_ids()) == 100000
    rss = rss_kb(d.proc.pid)
    print("100000 queued: outboxd RSS %d kB" % rss)
    # 24 octets an entry and its slot in the table; ASan's shadow memory
    # and quarantine multiply that, so the sanitizer build gets more
    limit = 512 if os.environ.get("OUTBOX_SAN") == "1" else 24
    assert rss < limit * 1024, "outboxd RSS %d kB with 100000 messages" % rss
    time.sleep(0.5)
    assert len(up.messages) == 1


def test_new_mail_is_not_queued_behind_the_backlog(relay_daemon):
    """2000 old messages due at once: new mail takes turns with them
    (scheduler.c lanes) instead of waiting for all of them."""
    d, up = relay_daemon(start=False)
    mkqueue(d, 2000)
    d.start()
    d.wait_log(r"queue indexed: 2000 messages found")
    r = d.sendmail(["-f", "me@sender.example", "fresh@r.example"], b"Subject: fresh\n\nnew\n")
    assert r.returncode == 0, r.stderr
    up.wait_for(2001, timeout=120)
    order = [m.rcpt_tos[0] for m in up.messages]
    before = order.index("fresh@r.example")
    print("new mail went out after %d of the backlog" % before)
    assert before < 1000, order.index("fresh@r.example")
    assert collections.Counter(order) == collections.Counter(
        ["r%d@example.net" % i for i in range(2000)] + ["fresh@r.example"])


def test_kill9_while_indexing_and_upgrading_loses_nothing(relay_daemon):
    """Killed while it moves a flat queue into buckets and indexes: after
    the restart every message is there once, and each goes once."""
    d, up = relay_daemon(start=False, relay={"port": "1"})    # refused: all wait
    mkqueue(d, 1500, "--flat")
    mkqueue(d, 1500)
    slow_disk(d, 300)
    d.start()
    time.sleep(0.8)
    os.kill(daemon_pid(d), signal.SIGKILL)
    d.proc.wait(10)
    d.logf.close()
    d.prefix = []
    d.start()
    d.wait_log(r"queue indexed: 3000 messages found", timeout=60)
    flat = [n for n in os.listdir(os.path.join(d.spool, "queue")) if len(n) != 2]
    assert flat == []
    assert len(d.queue_ids()) == 3000
    # now to the real upstream: each message once
    got = d.deliver_to(up, 3000, timeout=180)
    assert got == collections.Counter({"r%d@example.net" % i: 2 for i in range(1500)})
    assert d.queue_ids() == []


def test_flat_queue_of_the_release_before_is_taken_over(relay_daemon):
    """queue/ID files (no buckets) as the release before left them, one
    with a recipient already delivered: each goes once, that recipient
    never, and nothing is left in queue/ itself."""
    d, up = relay_daemon(start=False)
    mkqueue(d, 200, "--flat")
    qid = "6B0E000000000ABC"
    path = os.path.join(d.spool, "queue", qid)
    with open(path, "wb") as f:
        f.write(b"outbox-queue 1\narrival 1800000000.000000\nuid 1000\n"
                b"flags 8bitmime=0 smtputf8=0\nfrom <old@s.example>\n"
                b"rcpt D <done@r.example>\nrcpt Q <due@r.example>\nend\n"
                b"Subject: half done\r\n\r\nhalf\r\n")
    if IS_ROOT:
        subprocess.run(["chown", "outbox:outbox", path], check=True)
    d.start()
    d.wait_log(r"moved 201 messages from the flat queue/ into its buckets")
    up.wait_for(201, timeout=60)
    time.sleep(1)
    rcpts = [m.rcpt_tos for m in up.messages]
    assert ["due@r.example"] in rcpts and ["done@r.example"] not in rcpts
    assert sorted(r[0] for r in rcpts if r[0].startswith("r")) == \
        sorted("r%d@example.net" % i for i in range(200))
    assert [n for n in os.listdir(os.path.join(d.spool, "queue")) if len(n) != 2] == []
    d.stop()
    d.start()           # nothing is sent twice after a restart
    time.sleep(1.5)
    assert len(up.messages) == 201


def test_the_schedule_survives_a_restart(make_daemon):
    """A deferred message's next try is in its file's name: a restart
    does not try it early."""
    d = make_daemon(extra={"queue": {"retry_min": "6s", "retry_max": "6s"}})   # relay: refused
    r = d.sendmail(["-f", "a@s.example", "b@r.example"], b"Subject: x\n\nx\n")
    assert r.returncode == 0, r.stderr
    d.wait_log(r"tries=1 status=deferred")
    first = time.time()
    qid = d.queue_ids()[0]
    name = os.path.basename(d.queue_path(qid))
    assert re.fullmatch(qid + r"\.[0-9A-F]{8}\.1", name), name
    due = int(name.split(".")[1], 16)
    assert first + 4 < due <= first + 8
    d.stop()
    d.start()
    d.wait_log(r"queue indexed: 1 messages found")
    time.sleep(2)
    assert "tries=2" not in d.log()
    d.wait_log(r"tries=2 status=deferred", timeout=15)
    assert time.time() >= due - 0.1


def test_sendmail_q_retries_deferred_mail_now(relay_daemon):
    """sendmail -q (root): outboxd makes every deferred message due at
    once instead of at its next try an hour away; the file keeps its
    name's schedule until that attempt renames it."""
    d, up = relay_daemon(extra={"queue": {"retry_min": "1h", "retry_max": "1h"}})
    up.tempfail_rcpt = True
    for i in range(3):
        r = d.sendmail(["-f", "me@sender.example", "w%d@r.example" % i], b"Subject: w\n\nwait\n")
        assert r.returncode == 0, r.stderr
    d.wait_log(r"status=deferred .*next=\+1h", count=3)
    up.tempfail_rcpt = False
    time.sleep(1)
    assert up.messages == []
    r = d.sendmail(["-q"], b"")
    assert r.returncode == 0, r.stderr
    d.wait_log(r"flush asked by uid %d: 3 messages due now" % os.getuid())
    up.wait_for(3, timeout=20)
    assert sorted(m.rcpt_tos[0] for m in up.messages) == ["w%d@r.example" % i for i in range(3)]
    d.wait_log(r": removed", count=3)
    assert d.queue_ids() == []


def test_sendmail_q_without_the_daemon_or_the_right(make_daemon):
    d = make_daemon()
    d.stop()
    r = d.sendmail(["-q"], b"")
    assert r.returncode == 69 and b"outboxd is not running" in r.stderr, r
    d.start()
    if IS_ROOT:     # another user may: it flushes its own mail (none here)
        r = d.sendmail(["-q"], b"", user=65534)
        assert r.returncode == 0 and r.stdout == b"", r


def test_sendmail_bi_and_bp(make_daemon):
    d = make_daemon()
    r = d.sendmail(["-bi"], b"")
    assert r.returncode == 0, r
    r = d.sendmail(["-bp"], b"")
    assert r.returncode == 0 and r.stdout.endswith(b"Mail queue is empty\n"), r
