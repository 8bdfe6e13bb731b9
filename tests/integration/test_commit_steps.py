"""The commit protocol (common/queue.c), tested by killing outboxd at each
step: strace injects SIGKILL when the committing thread enters the
file's fsync, the rename into its bucket, or the fsync of the bucket.  The libuv thread pool is cut to one thread so
that those calls are counted on one thread, and strace's count names
the step.

Before the rename the message must be gone after a restart; killed at
the bucket's fsync it survives (a kill is not a power loss: the rename
is in the page cache), whole, and is delivered once.  Never is a 250
sent, and never does the sender's exit status say success.  Both ways
of writing step 1 are covered: a new tmp file, and a spare file of a
delivered message.  (A power cut, which a kill cannot show, is
test_power_cut.py.)"""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import bucket_of
from test_delivery import send


# LeakSanitizer cannot run under ptrace: a SAN build traced by strace
# would report that at exit instead of leaks.
NO_LSAN = ["env", "ASAN_OPTIONS=detect_leaks=0"]


def attach_strace(d, syscall=None, nth=None, args=None):
    """Attach strace to the running outboxd, every thread: from now, the
    nth call of syscall gets SIGKILL (or what args say)."""
    d.trace = os.path.join(d.base, "strace.out")
    pid = d.proc.pid
    args = args or ["-e", "trace=openat,fsync,renameat2",
                    "-e", "inject=%s:signal=KILL:when=%d" % (syscall, nth)]
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", d.trace, "-p", str(pid)] + args)
    deadline = time.time() + 10
    while time.time() < deadline:   # every thread traced (threads may come and go)
        traced = untraced = 0
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/status" % (pid, t)) as f:
                    tracer_pid = int(re.search(r"TracerPid:\s+(\d+)", f.read()).group(1))
            except OSError:     # FileNotFoundError, ProcessLookupError:
                continue        # that thread has ended
            traced += tracer_pid == tracer.pid
            untraced += tracer_pid != tracer.pid
        if traced and not untraced:
            return tracer
        time.sleep(0.02)
    raise AssertionError("strace did not attach")


def trace_opens(d, path):
    """Attach strace (opens only) to the running outboxd; returns a
    function that detaches it (outboxd runs on) and gives the threads
    that opened path meanwhile, and the lines that say so."""
    tracer = attach_strace(d, args=["-e", "trace=openat"])

    def done():
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
        lines = [ln for ln in open(d.trace) if '"%s"' % path in ln]
        assert lines, open(d.trace).read()
        return {int(ln.split()[0]) for ln in lines}, lines
    return done


def read_trace(path):
    """strace -f's output with each call whole on one line: a call that
    another thread's interrupted ("openat(... <unfinished ...>", then
    later "<... openat resumed>) = 5") is put back together where it
    began (on a loaded machine that happens to any call)."""
    lines, begun = [], {}
    with open(path) as f:
        for line in f.read().splitlines():
            m = re.match(r"(\d+) +<\.\.\. \w+ resumed>(.*)", line)
            if m and m.group(1) in begun:
                i = begun.pop(m.group(1))
                lines[i] = lines[i][:-len(" <unfinished ...>")] + m.group(2)
                continue
            if line.endswith(" <unfinished ...>"):
                begun[line.split()[0]] = len(lines)
            lines.append(line)
    return "\n".join(lines) + "\n"


STEPS = [  # (syscall, which call of the message's commit, does the message survive?)
    # the buckets are made at start, so a commit is exactly these
    ("fsync", 1, False),        # 2. fsync(tmp file)
    ("renameat2", 1, False),    # 4. rename into queue/XX
    ("fsync", 2, True),         # 5. fsync(queue/XX)
]


def spare_ready(events):
    """Replay the store's spare rule (queue.c SPARE FILES) over
    [(kind, bucket)] in log order: is a spare rewritable now?  A spare
    becomes rewritable when a commit into the bucket it left follows its
    removal; a commit takes a rewritable spare."""
    spares = []     # [bucket, ready]
    for kind, bucket in events:
        if kind == "queued":
            ready = [sp for sp in spares if sp[1]]
            if ready:
                spares.remove(ready[0])
            for sp in spares:
                if sp[0] == bucket:
                    sp[1] = True
        else:
            spares.append([bucket, False])
    return any(sp[1] for sp in spares)


@pytest.mark.parametrize("reuse", [False, True], ids=["new-file", "spare-file"])
@pytest.mark.parametrize("syscall,nth,survives", STEPS, ids=["fsync-file", "rename", "fsync-dir"])
def test_kill_at_each_commit_step(relay_daemon, reuse, syscall, nth, survives):
    d, up = relay_daemon()       # first start: the spool and its buckets are made (and fsynced)
    d.stop()
    # one pool thread; LeakSanitizer cannot run under ptrace
    d.prefix = NO_LSAN + ["UV_THREADPOOL_SIZE=1"]
    d.start()
    before, events = 0, []
    while reuse and not spare_ready(events):
        # deliver messages one by one until a spare file is rewritable
        # (a commit into the bucket of a removed message followed its
        # removal): the victim then rewrites it
        assert before < 400
        send(d, ["early%d@r.example" % before], b"Subject: early\n\nearly %d\n" % before)
        d.wait_log(r"to=<early%d@r.example> .* status=sent" % before)
        d.wait_log(r"removed", count=before + 1)
        qid = re.findall(r"(\w{16}): uid=\d+ from=", d.log())[-1]
        events += [("queued", bucket_of(qid)), ("removed", bucket_of(qid))]
        before += 1
    d.wait_log(r"queue indexed")           # the indexer's thread has ended
    tracer = attach_strace(d, syscall, nth)
    body = b"Subject: victim\n\nthe victim\n"
    r = d.sendmail(["-f", "me@sender.example", "victim@r.example"], body)
    assert r.returncode != 0, "the sender was told the message is safe"
    d.proc.wait(10)
    tracer.wait(10)                             # strace ends with its tracee
    trace = read_trace(d.trace)
    assert "+++ killed by SIGKILL +++" in trace
    if reuse:  # the victim was written over a spare, not a new file
        assert re.search(r'openat\(AT_FDCWD, "[^"]*/tmp/spare\.\d+", O_WRONLY\|O_CLOEXEC\)', trace), trace
    d.prefix = []
    d.start()
    # the partial file is gone (spares of messages delivered since may be there)
    assert [f for f in os.listdir(os.path.join(d.spool, "tmp")) if not f.startswith("spare.")] == []
    assert os.listdir(os.path.join(d.spool, "corrupt")) == []
    if survives:
        m = up.wait_for(before + 1)[-1]
        assert m.rcpt_tos == ["victim@r.example"] and m.data.endswith(b"\r\n\r\nthe victim\r\n")
    else:
        assert d.queue_ids() == []
    time.sleep(1.0)
    victims = [m for m in up.messages if m.rcpt_tos == ["victim@r.example"]]
    assert len(victims) == (1 if survives else 0)
    # what was delivered before the crash is not delivered again
    assert sorted(m.rcpt_tos[0] for m in up.messages if m.rcpt_tos[0].startswith("early")) == \
        sorted("early%d@r.example" % i for i in range(before))




def stop_traced(d):
    """SIGTERM to outboxd itself (strace would keep it), then strace ends."""
    pid = int(re.findall(r"outboxd\[(\d+)\]: running", d.log())[-1])
    os.kill(pid, signal.SIGTERM)
    d.proc.wait(30)                 # (stop() now would send a second SIGTERM)
    assert d.stop() == 0


def test_failed_directory_fsync_refuses_until_it_works_again(relay_daemon):
    """strace fails the first fsync of a bucket with EIO: that commit is
    refused (temporary) and leaves nothing behind; mail for the other
    buckets goes on; the store opens that bucket anew and fsyncs it
    before it acknowledges anything in it again."""
    d, up = relay_daemon()          # first start: makes the spool and its buckets
    d.stop()
    d.prefix = NO_LSAN + ["UV_THREADPOOL_SIZE=1"]     # strace counts calls per thread
    d.start()
    d.wait_log(r"queue indexed")           # the indexer's thread has ended
    buckets = [os.path.join(d.spool, "queue", "%02X" % b) for b in range(256)]
    tracer = attach_strace(d, args=["-y"] + [a for p in buckets for a in ("-P", p)]
                           + ["-e", "trace=openat,fsync", "-e", "inject=fsync:error=EIO:when=1"])
    r = d.sendmail(["-f", "me@sender.example", "lost@r.example"], b"Subject: one\n\nfirst\n")
    assert r.returncode == 75, r
    assert d.queue_ids() == []
    d.wait_log(r"fsync \S+/queue/[0-9A-F]{2}: Input/output error: no mail is queued there")
    failed = re.search(r"fsync \S+/queue/([0-9A-F]{2}): Input/output error", d.log()).group(1)
    # send until a message is queued in that bucket: the others go meanwhile
    sent = 0
    while True:
        assert sent < 3000, "no message came to bucket %s" % failed
        r = d.sendmail(["-f", "me@sender.example", "kept%d@r.example" % sent],
                       b"Subject: two\n\nkept %d\n" % sent)
        assert r.returncode == 0, r.stderr
        sent += 1
        qid = re.findall(r"(\w{16}): uid=\d+ from=", d.log())[-1]
        if bucket_of(qid) == failed:
            break
    d.wait_log(r"fsync \S+/queue/%s works again" % failed)
    up.wait_for(sent, timeout=60)
    time.sleep(0.5)
    stop_traced(d)
    tracer.wait(30)                 # strace's output is complete only once it has ended
    trace = read_trace(d.trace)
    after = trace.split("(INJECTED)", 1)[1]
    # the bucket opened anew, then an fsync of it that worked, before its next commit
    reopened = re.search(r"openat\(AT_FDCWD[^,]*, \"[^\"]*/queue/%s\", O_RDONLY[A-Z_|]*\)"
                         r" = (\d+)<" % failed, after).group(1)
    assert re.search(r"fsync\(%s<[^>]*/queue/%s>\) += 0" % (reopened, failed), after), after
    assert sorted(x.rcpt_tos[0] for x in up.messages) == \
        sorted("kept%d@r.example" % i for i in range(sent))


def test_new_spool_directories_reach_the_disk(make_daemon):
    """Every directory the store makes (the buckets of queue/ too) is
    fsynced, and so is its parent (the name), before outboxd says it
    started: a power cut after the first start cannot lose queue/ and the
    mail acknowledged in it."""
    d = make_daemon(start=False)
    d.trace = os.path.join(d.base, "strace.out")
    d.prefix = NO_LSAN + ["strace", "-f", "-qq", "-y", "-o", d.trace, "-e",
                          "trace=mkdir,mkdirat,fsync"]
    d.start()
    calls = read_trace(d.trace).splitlines()
    made = []   # (index, path) of each mkdir that made a directory
    for i, c in enumerate(calls):
        m = re.search(r'mkdir(?:at)?\((?:\w+<([^>]*)>, |\d+<([^>]*)>, )?"([^"]+)"', c)
        if m and c.rstrip().endswith("= 0"):
            base = m.group(1) if m.group(3).startswith("/") else (m.group(1) or m.group(2))
            made.append((i, os.path.join(base or "", m.group(3))))
    spool_dirs = [(i, p) for i, p in made if p.startswith(d.spool)]
    # spool, tmp, queue, corrupt, pickup/{,tmp,new,bad}, 256 buckets
    assert len(spool_dirs) >= 8 + 256, made
    for i, p in spool_dirs:
        later = "\n".join(calls[i:])
        assert re.search(r"fsync\(\d+<%s>\) += 0" % re.escape(p), later), p
        assert re.search(r"fsync\(\d+<%s>\) += 0" % re.escape(os.path.dirname(p)), later), p
    stop_traced(d)


def test_loop_thread_waits_for_no_disk_and_no_name_service(relay_daemon):
    """A 600 KB message is written to its queue file on the thread pool,
    and the submitting user's name (for Received:) is looked up there
    too: strace shows no such call from the loop thread (the main one)."""
    d, up = relay_daemon()
    d.stop()
    d.trace = os.path.join(d.base, "strace.out")
    d.prefix = NO_LSAN + ["strace", "-f", "-qq", "-y", "-o", d.trace, "-e",
                          "trace=openat,write,pwrite64,accept,accept4"]
    d.start()
    big = b"Subject: big\n\n" + b"0123456789abcdef\n" * 36000
    send(d, ["big@r.example"], big)
    up.wait_for(1)
    stop_traced(d)
    main = int(re.findall(r"outboxd\[(\d+)\]: running", d.log())[-1])
    calls = read_trace(d.trace).splitlines()
    tmp = os.path.join(d.spool, "tmp")
    writes = [c for c in calls if re.match(r"\d+ +(write|pwrite64)\(\d+<%s/" % re.escape(tmp), c)]
    passwd = [c for c in calls if '"/etc/passwd"' in c and "outbox.conf" not in c]
    assert len(writes) >= 2 and passwd, (len(writes), passwd)
    assert all(int(c.split()[0]) != main for c in writes), [c for c in writes if int(c.split()[0]) == main][:3]
    accepted = next(i for i, c in enumerate(calls) if re.match(r"\d+ +accept4?\(", c))
    after_start = [c for c in passwd if calls.index(c) > accepted]   # the submission's
    assert after_start and all(int(c.split()[0]) != main for c in after_start), after_start
    assert up.messages[0].data.endswith(b"\r\n\r\n" + b"0123456789abcdef\r\n" * 36000)
