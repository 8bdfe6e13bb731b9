"""A local user against the pickup directory and the spool (issue 19,
points 2, 6 and the daemon's side of 3).

- A file taken from pickup/ is never mistaken for another: it is renamed
  to pickup/taking/ID (ID from the store's generator) before its commit,
  and only that file is removed once that ID is queued (pickup.c TAKING).
  Today's ID from a file's ctime and inode made distinct files renamed in
  one clock tick, whose inodes share their low 12 bits, one message: the
  second was deleted as "queued already" after its sender was told it
  was accepted.
- Each file dropped is delivered exactly once, also across a kill -9 at
  every step of the hand-over.
- What is delivered is gone: no queue file recycled as a spare keeps the
  message's bytes (queue.c SPARE FILES), and `outbox delete` removes it.
- [queue] min_free holds for pickup too: below it a file waits in new/,
  said once, and is taken once there is room.

Each test asserts on what the upstream received or what is on disk."""

import collections
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import IS_ROOT
from test_commit_steps import attach_strace
from test_pickup import drop, new_files


def taking_files(d):
    path = os.path.join(d.spool, "pickup", "taking")
    return os.listdir(path) if os.path.isdir(path) else []


def token_counts(up, prefix):
    """How many messages the upstream received with each token prefix-N
    (a message names its token in its subject and its body)."""
    got = collections.Counter()
    for m in up.messages:
        got.update(set(t.decode() for t in re.findall(rb"\b%s-\d+\b" % prefix.encode(), m.data)))
    return got


def message(token, to="r@r.example"):
    return b"To: %s\nSubject: %s\n\nbody %s\n" % (to.encode(), token.encode(), token.encode())


# ---- point 2: each file is its own message, taken once ----

def colliding_pairs(d, want, limit=12000):
    """Files made in pickup/tmp/ until `want` pairs share the low 12
    bits of their inode numbers (what the old pickup ID kept of a
    file); the others are removed.  [(path, path)]."""
    tmp = os.path.join(d.spool, "pickup", "tmp")
    by_low = {}
    pairs = []
    for i in range(limit):
        p = os.path.join(tmp, "c%d" % i)
        with open(p, "wb") as f:
            f.write(message("coll-%d" % i))
        low = os.stat(p).st_ino & 0xFFF
        if low in by_low:
            pairs.append((by_low.pop(low), p))
            if len(pairs) == want:
                break
        else:
            by_low[low] = p
    for p in by_low.values():
        os.unlink(p)
    return pairs


def test_files_whose_old_ids_collide_are_each_delivered_once(relay_daemon):
    """Pairs of files whose inodes share their low 12 bits, renamed into
    new/ back to back (one ctime tick): each is its own message."""
    d, up = relay_daemon(start=False)
    os.makedirs(os.path.join(d.spool, "pickup", "tmp"))
    os.makedirs(os.path.join(d.spool, "pickup", "new"))
    pairs = colliding_pairs(d, 60)
    assert len(pairs) >= 20, "no inode collisions found"
    tokens = []
    new = os.path.join(d.spool, "pickup", "new")
    for a, b in pairs:      # each pair within microseconds: one ctime tick
        os.rename(a, os.path.join(new, os.path.basename(a)))
        os.rename(b, os.path.join(new, os.path.basename(b)))
        tokens += [os.path.basename(a), os.path.basename(b)]
    if IS_ROOT:     # made here as root: outboxd's own (a root start gives no directory away)
        subprocess.run(["chown", "-R", "outbox:outbox", d.spool], check=True)
    d.start()
    up.wait_for(len(tokens), timeout=30)
    time.sleep(2.5)                 # a rescan: nothing more comes
    got = token_counts(up, "coll")
    assert got == collections.Counter("coll-%s" % t[1:] for t in tokens)
    assert "queued already" not in d.log()
    assert new_files(d) == [] and taking_files(d) == []


def test_2000_files_dropped_at_once_each_delivered_once(relay_daemon):
    d, up = relay_daemon(relay={"workers": "4"})
    for i in range(2000):
        drop(d, "b%d" % i, message("burst-%d" % i))
    up.wait_for(2000, timeout=180)
    time.sleep(2.5)                 # a rescan: nothing more comes
    assert token_counts(up, "burst") == collections.Counter("burst-%d" % i for i in range(2000))
    assert len(up.messages) == 2000
    assert new_files(d) == [] and taking_files(d) == []


# ---- a kill -9 at each step of the hand-over (pickup_take.c TAKING) ----

TAKE_STEPS = [  # (syscall, which call in its thread): the kill comes before it
    ("renameat2", 1),       # 2. new/NAME -> taking/ID (the read's thread)
    ("fsync", 1),           # 4. the commit: fsync(tmp/ID) (the commit's thread, as below)
    ("fsync", 2),           # 4. the commit: fsync(queue/XX), after tmp/ID -> queue/XX/ID
    ("unlink", 1),          # 5. unlink(taking/ID)
]
# strace counts calls per thread: the commit's rename into queue/XX is
# the second renameat2 of the pickup but the first of its thread, so it
# cannot be told from step 2; a kill there leaves what a kill at fsync 1
# leaves (taking/ID, tmp/ID, no message).


@pytest.mark.parametrize("syscall,nth", TAKE_STEPS)
def test_a_kill_at_each_step_of_taking_sends_once(relay_daemon, syscall, nth):
    d, up = relay_daemon(relay={"port": "1"})       # nothing goes before the kill
    d.wait_log(r"queue indexed")
    tracer = attach_strace(d, args=["-e", "trace=renameat2,fsync,unlink,unlinkat",
                                    "-e", "inject=%s:signal=KILL:when=%d" % (syscall, nth)])
    drop(d, "victim", message("victim-1"))
    d.proc.wait(20)
    tracer.wait(10)
    d.logf.close()
    assert "+++ killed by SIGKILL +++" in open(d.trace).read()
    if (syscall, nth) == ("renameat2", 1):
        assert new_files(d) == ["victim"] and taking_files(d) == []
    else:
        assert new_files(d) == [] and len(taking_files(d)) == 1
    queued = len(d.queue_ids())
    assert queued == (1 if (syscall, nth) in (("fsync", 2), ("unlink", 1)) else 0)
    d.relay_to(up)
    d.start()
    if queued:
        d.wait_log(r"pickup/taking/\w+: queued before a crash: removed")
    elif syscall != "renameat2" or nth != 1:
        d.wait_log(r"pickup/taking/\w+: not queued before a crash: back to pickup/new/")
    up.wait_for(1)
    time.sleep(2.5)         # a second pickup would have gone by now
    assert token_counts(up, "victim") == {"victim-1": 1} and len(up.messages) == 1
    assert new_files(d) == [] and taking_files(d) == []


def test_kills_during_a_burst_lose_nothing_and_send_once(relay_daemon):
    """kill -9 twice while 400 files are being taken: after the restarts
    each file reaches the upstream exactly once."""
    d, up = relay_daemon(relay={"port": "1"})       # all stays queued until the end
    for i in range(400):
        drop(d, "k%d" % i, message("kill-%d" % i))
    for taken in (40, 160):
        d.wait_log(r"via=pickup", count=taken, timeout=60)
        d.kill9()
        d.start()
    d.stop()
    d.relay_to(up)
    d.start()
    up.wait_for(400, timeout=120)
    time.sleep(2.5)
    assert token_counts(up, "kill") == collections.Counter("kill-%d" % i for i in range(400))
    assert len(up.messages) == 400
    assert new_files(d) == [] and taking_files(d) == []


# ---- point 6: what is delivered is gone ----

def spool_holding(d, token):
    """Every file under the spool whose raw bytes hold token."""
    found = []
    for top, dirs, files in os.walk(d.spool):
        for f in files:
            p = os.path.join(top, f)
            try:
                with open(p, "rb") as fh:
                    if token in fh.read():
                        found.append(os.path.relpath(p, d.spool))
            except OSError:
                pass
    return found


def secret_body(token, size):
    line = b"%s the text of a private message\r\n" % token
    return b"Subject: private\r\n\r\n" + line * (size // len(line) + 1)


@pytest.mark.parametrize("size", [2 * 1024, 40 * 1024])
def test_a_delivered_message_leaves_nothing_in_the_spool(relay_daemon, size):
    d, up = relay_daemon()
    token = b"SECRET-%d-%d" % (size, os.getpid())
    with d.smtp() as s:
        s.sendmail("a@sender.example", ["to@r.example"], secret_body(token, size))
    assert token in up.wait_for(1)[0].data
    d.wait_log(r": removed")
    time.sleep(0.5)
    assert spool_holding(d, token) == []
    time.sleep(8)           # as long as the report waited: still nothing
    assert spool_holding(d, token) == []


@pytest.mark.parametrize("size", [2 * 1024, 40 * 1024])
def test_a_deleted_message_leaves_nothing_in_the_spool(relay_daemon, size):
    d, up = relay_daemon(extra={"queue": {"retry_min": "1h", "retry_max": "2h"}})
    up.tempfail_rcpt = True
    token = b"DELETED-%d-%d" % (size, os.getpid())
    with d.smtp() as s:
        s.sendmail("a@sender.example", ["to@r.example"], secret_body(token, size))
    d.wait_log(r"status=deferred")
    (qid,) = d.queue_ids()
    assert spool_holding(d, token) != []        # the search does find it while queued
    r = d.outbox("delete", qid)
    assert r.returncode == 0, r
    assert spool_holding(d, token) == []


# ---- point 3, the daemon's side: [queue] min_free holds for pickup ----

def test_pickup_below_min_free_waits_in_new_and_is_taken_once_there_is_room(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"min_free": "500G"}})
    drop(d, "big", message("room-1") + b"x" * (2 * 1024 * 1024) + b"\n")
    d.wait_log(r"is below \[queue\] min_free .*: new mail is refused \(452\) and files wait in "
               r"pickup/new/")
    time.sleep(4.5)                 # two rescans: still waiting, said once
    assert new_files(d) == ["big"] and taking_files(d) == [] and d.queue_ids() == []
    assert len(re.findall(r"min_free", d.log())) == 1, d.log()
    assert up.messages == []
    d.sections["queue"]["min_free"] = "1M"
    d.write_conf()
    os.kill(d.proc.pid, signal.SIGHUP)
    up.wait_for(1, timeout=30)
    time.sleep(2.5)
    assert token_counts(up, "room") == {"room-1": 1} and len(up.messages) == 1
    d.wait_log(r"has room again")
    assert new_files(d) == [] and taking_files(d) == []
