"""The control socket and the queue tools: outbox queue (mailq, sendmail
-bp), show, flush (sendmail -q), delete, hold, release, status, with the
permissions outboxd takes from the socket's peer credentials."""

import json
import os
import pwd
import re
import subprocess
import time

import pytest

from conftest import OUTBOX, IS_ROOT

NOBODY = 65534


def tool(d, *args, user=None, argv0=None):
    return d.outbox(*args, user=user, argv0=argv0)


def submit(d, rcpts, subject="s", user=None, sender=None):
    args = (["-f", sender] if sender else []) + rcpts
    r = d.sendmail(args, b"Subject: %s\n\nbody\n" % subject.encode(), user=user)
    assert r.returncode == 0, r.stderr
    return sorted(set(d.queue_ids()))


def deferred(d, n):
    """n deferrals logged, and every message the daemon holds is out of
    the workers' hands (the log line comes just before the worker tells
    the loop)."""
    d.wait_log(r"status=deferred", count=n)
    deadline = time.time() + 10
    while time.time() < deadline:
        states = [json.loads(x)["state"] for x in tool(d, "queue", "--json").stdout.splitlines()]
        if "active" not in states:
            return
        time.sleep(0.05)
    raise AssertionError("still in delivery: %r" % states)


def one_sent_one_deferred(d, up):
    submit(d, ["ok@r.example"])
    up.wait_for(1)
    d.wait_log(r"status=sent")
    up.tempfail_rcpt = True
    submit(d, ["later@r.example"])
    deferred(d, 1)


def roots_and_nobodys(d, up):
    """One deferred message of root's and one of nobody's."""
    up.tempfail_rcpt = True
    submit(d, ["roots@r.example"])
    submit(d, ["nobodys@r.example"], user=NOBODY)
    deferred(d, 2)


@pytest.fixture
def slow_retry():
    # deferred mail waits an hour: only a flush or a release brings it back
    return {"queue": {"retry_min": "1h", "retry_max": "2h"}}


def test_queue_lists_messages_and_recipients(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    up.tempfail_rcpt = True
    submit(d, ["a@r.example", "b@r.example"], sender="app@sender.example")
    deferred(d, 2)
    (qid,) = d.queue_ids()
    r = tool(d, "queue")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("-Queue ID-")
    assert re.match(r"^%s  +\d+ \w{3} \w{3} +\d+ \d\d:\d\d:\d\d  app@sender\.example$" % qid, lines[1]), lines
    assert "(deferred: 1 try, next try" in lines[2]
    # as mailq: each waiting recipient's last reply, then the address
    assert lines[3].strip() == "(451 4.7.1 <a@r.example>: Recipient address rejected: greylisted)"
    assert lines[4].strip() == "a@r.example"
    assert lines[5].strip() == "(451 4.7.1 <b@r.example>: Recipient address rejected: greylisted)"
    assert lines[6].strip() == "b@r.example"
    assert lines[-1] == "-- 1 Kbytes in 1 Request."
    # mailq and sendmail -bp are the same listing
    assert tool(d, argv0="mailq").stdout == r.stdout
    assert d.sendmail(["-bp"], b"").stdout.decode() == r.stdout
    j = tool(d, "queue", "--json")
    assert j.returncode == 0, j.stderr
    (m,) = [json.loads(x) for x in j.stdout.splitlines()]
    assert m["id"] == qid and m["sender"] == "app@sender.example" and m["uid"] == os.getuid()
    assert m["state"] == "deferred" and m["tries"] == 1 and m["next_try"] > time.time() + 3000
    assert m["held"] is False
    assert [(x["address"], x["state"], x["last_reply"]) for x in m["recipients"]] == \
        [("a@r.example", "deferred", "451 4.7.1 <a@r.example>: Recipient address rejected: greylisted"),
         ("b@r.example", "deferred", "451 4.7.1 <b@r.example>: Recipient address rejected: greylisted")]
    # delivered, the message leaves no reason file behind
    up.tempfail_rcpt = False
    assert tool(d, "flush", qid).returncode == 0
    up.wait_for(1)
    d.wait_log(r"%s: removed" % qid)
    assert [f for _, _, fs in os.walk(os.path.join(d.spool, "defer")) for f in fs] == []


def test_empty_queue_and_show(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    r = tool(d, "queue")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "Mail queue is empty"
    assert tool(d, "queue", "--json").stdout == ""
    up.tempfail_rcpt = True
    submit(d, ["a@r.example"], subject="shown")
    deferred(d, 1)
    (qid,) = d.queue_ids()
    s = tool(d, "show", qid)
    assert s.returncode == 0, s.stderr
    assert "id: %s" % qid in s.stdout
    assert "recipient: <a@r.example> deferred (451 4.7.1 <a@r.example>: Recipient address rejected: " \
           "greylisted)" in s.stdout
    assert "Subject: shown" in s.stdout and "body" not in s.stdout.split("Subject: shown")[1]
    bad = tool(d, "show", "6B0E000000000000")
    assert bad.returncode == 1 and "not in the queue" in bad.stderr
    assert tool(d, "show", "../../etc/passwd").returncode == 64


def test_hold_survives_a_restart_and_release_sends(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    up.tempfail_rcpt = True
    submit(d, ["held@r.example"])
    deferred(d, 1)
    (qid,) = d.queue_ids()
    r = tool(d, "hold", qid)
    assert r.returncode == 0 and r.stdout.strip() == "%s: held" % qid, r
    assert tool(d, "hold", qid).stdout.strip() == "%s: already so" % qid
    (path,) = d.queue_paths().values()
    assert path.endswith(".H")
    d.stop()
    d.start()
    up.tempfail_rcpt = False
    listing = tool(d, "queue").stdout
    assert re.search(r"^%s!" % qid, listing, re.M), listing
    (m,) = [json.loads(x) for x in tool(d, "queue", "--json").stdout.splitlines()]
    assert m["state"] == "held" and m["held"] is True
    assert tool(d, "flush").returncode == 0        # a flush does not touch held mail
    assert tool(d, "flush", qid).stdout.strip() == "%s: not waiting for a retry" % qid
    time.sleep(1.5)
    assert up.messages == []
    r = tool(d, "release", qid)
    assert r.returncode == 0 and r.stdout.strip() == "%s: released" % qid, r
    assert up.wait_for(1)[0].rcpt_tos == ["held@r.example"]
    assert re.search(r"%s: held by uid 0" % qid, d.log()) and re.search(r"%s: released by uid 0" % qid, d.log())


def test_delete_is_gone_for_good(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    up.tempfail_rcpt = True
    submit(d, ["gone@r.example"])
    submit(d, ["kept@r.example"])
    deferred(d, 2)
    ids = d.queue_ids()
    doomed = [q for q in ids if "gone@r.example" in d.parse_queue_file(q)[0]["rcpt"][0]][0]
    r = tool(d, "delete", doomed, "6B0E000000000000")
    assert r.returncode == 1
    assert r.stdout.strip() == "%s: deleted" % doomed and "6B0E000000000000: not in the queue" in r.stderr
    assert doomed not in d.queue_ids() and len(d.queue_ids()) == 1
    up.tempfail_rcpt = False
    assert tool(d, "flush").returncode == 0
    assert [m.rcpt_tos for m in up.wait_for(1)] == [["kept@r.example"]]
    d.stop()
    d.start()
    time.sleep(1)
    assert len(up.messages) == 1


def test_flush_and_sendmail_q_retry_now(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    up.tempfail_rcpt = True
    submit(d, ["one@r.example"])
    deferred(d, 1)
    up.tempfail_rcpt = False
    (qid,) = d.queue_ids()
    r = tool(d, "flush", qid)
    assert r.returncode == 0 and r.stdout.strip() == "%s: due now" % qid
    up.wait_for(1)
    up.tempfail_rcpt = True
    submit(d, ["two@r.example"])
    deferred(d, 2)
    up.tempfail_rcpt = False
    r = d.sendmail(["-q"], b"")
    assert r.returncode == 0, r.stderr
    assert up.wait_for(2)[1].rcpt_tos == ["two@r.example"]


def test_status(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    one_sent_one_deferred(d, up)
    r = tool(d, "status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^outboxd \S+ is running \(pid \d+\), up ", r.stdout, re.M)
    assert "queue: 1 messages: 0 queued, 1 deferred, 0 in delivery, 0 held" in r.stdout
    assert "since start: 2 received, 1 sent, 1 deferred, 0 bounced" in r.stdout
    assert re.search(r"last upstream result: 451 4\.7\.1 <later@r\.example>", r.stdout)
    s = json.loads(tool(d, "status", "--json").stdout)
    assert s["up"] is True and s["queue"]["deferred"] == 1 and s["since_start"]["sent"] == 1
    assert s["last_result"]["reply"].startswith("451 4.7.1")
    d.stop()
    down = tool(d, "status")
    assert down.returncode == 1 and "outboxd is not running" in down.stderr


@pytest.mark.skipif(not IS_ROOT, reason="runs the tools as other users")
def test_users_see_and_act_on_their_own_mail_only(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    roots_and_nobodys(d, up)
    ids = d.queue_ids()
    owner = {q: int(d.parse_queue_file(q)[0]["uid"]) for q in ids}
    mine = [q for q in ids if owner[q] == NOBODY][0]
    roots = [q for q in ids if owner[q] == 0][0]
    # nobody sees its own message only, and nothing of root's
    r = tool(d, "queue", "--json", user=NOBODY)
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == [mine]
    for verb in ("show", "hold", "delete", "flush", "release"):
        r = tool(d, verb, roots, user=NOBODY)
        assert r.returncode == 1 and "%s: not in the queue" % roots in r.stderr, (verb, r)
    assert not any(p.endswith(".H") for p in d.queue_paths().values())
    assert len(d.queue_ids()) == 2
    # but acts on its own
    r = tool(d, "hold", mine, user=NOBODY)
    assert r.returncode == 0 and r.stdout.strip() == "%s: held" % mine
    assert "%s: held by uid %d" % (mine, NOBODY) in d.log()
    # released, it is due at once; root's still waits
    up.tempfail_rcpt = False
    assert tool(d, "release", mine, user=NOBODY).returncode == 0
    up.wait_for(1)
    time.sleep(1)
    assert [m.rcpt_tos for m in up.messages] == [["nobodys@r.example"]]   # root's still waits
    # root and the daemon's own user see everything
    outbox_uid = pwd.getpwnam("outbox").pw_uid
    for who in (None, outbox_uid):
        listing = tool(d, "queue", "--json", user=who).stdout.splitlines()
        assert [json.loads(x)["id"] for x in listing] == [roots], who


@pytest.mark.serial   # a user in outbox's group for everyone: it took uid 1001, another test's ALICE
@pytest.mark.skipif(not IS_ROOT, reason="makes a user in the daemon's group")
def test_members_of_the_daemons_group_see_everything(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    name = "outbox-t-member"
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", "outbox",
                    name], check=True)
    try:
        uid = pwd.getpwnam(name).pw_uid
        up.tempfail_rcpt = True
        submit(d, ["x@r.example"])
        deferred(d, 1)
        (qid,) = d.queue_ids()
        # its process is not in the group (--clear-groups): membership is by the user database
        r = tool(d, "queue", "--json", user=uid)
        assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == [qid]
        assert tool(d, "hold", qid, user=uid).returncode == 0
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_bad_requests(relay_daemon):
    d, up = relay_daemon()
    import socket
    for req, code in ((b"BOGUS\n", 64), (b"HOLD\n", 64), (b"HOLD nothex\n", 64),
                      (b"QUEUE " + b"x" * 9000 + b"\n", 64)):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.sections["listen"]["control"])
        s.sendall(req)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        assert out.endswith(b"0 exit %d\n" % code), (req[:20], out)
    assert tool(d, "hold").returncode == 64          # the tool's own usage check
    r = tool(d, "status")
    assert r.returncode == 0                          # the daemon is unharmed


@pytest.mark.skipif(not IS_ROOT, reason="runs sendmail as another user")
def test_sendmail_q_by_a_user_flushes_its_own_mail_only(relay_daemon, slow_retry):
    d, up = relay_daemon(extra=slow_retry)
    roots_and_nobodys(d, up)
    up.tempfail_rcpt = False
    r = d.sendmail(["-q"], b"", user=NOBODY)
    assert r.returncode == 0, r.stderr
    assert up.wait_for(1)[0].rcpt_tos == ["nobodys@r.example"]
    time.sleep(1)
    assert len(up.messages) == 1 and len(d.queue_ids()) == 1
    assert d.sendmail(["-q30m"], b"").returncode == 0      # root: every message
    assert up.wait_for(2)[1].rcpt_tos == ["roots@r.example"]


def test_hold_and_delete_of_mail_in_delivery(relay_daemon, slow_retry):
    """The upstream does not answer EHLO: each worker is stuck on the
    message it took, the others wait in the pool's queue.  A waiting one
    is taken back at once; one a worker has is held (or deleted) when
    that attempt ends."""
    d, up = relay_daemon(extra=slow_retry, relay={"timeout": "3s", "workers": "1"})
    up.hold = True
    up.tempfail_rcpt = True
    for i in range(3):
        submit(d, ["m%d@r.example" % i], subject="m%d" % i)
    states = {}
    deadline = time.time() + 10
    while time.time() < deadline and sorted(states.values()) != ["active"] * 3:
        states = {m["id"]: m["state"] for m in map(json.loads, tool(d, "queue", "--json").stdout.splitlines())}
    assert sorted(states.values()) == ["active"] * 3, states
    first, second, third = sorted(states)                 # IDs sort by arrival
    r = tool(d, "hold", first)
    assert r.stdout.strip() == "%s: in delivery now; held when this attempt ends" % first, r
    r = tool(d, "hold", third)
    assert r.stdout.strip() == "%s: held" % third, r      # taken back from the pool
    r = tool(d, "delete", second)
    assert r.returncode == 0 and r.stdout.strip() == "%s: deleted" % second, r
    up.hold = False
    d.wait_log(r"%s: held \(after its attempt\)" % first, timeout=30)
    paths = d.queue_paths()
    assert sorted(paths) == [first, third]
    assert all(p.endswith(".H") for p in paths.values()), paths
    up.tempfail_rcpt = False
    time.sleep(1.5)
    assert up.messages == []
    assert tool(d, "release", first, third).returncode == 0
    assert sorted(m.rcpt_tos[0] for m in up.wait_for(2)) == ["m0@r.example", "m2@r.example"]


def parse_metrics(text):
    """{(name, labels): value} from the Prometheus text format, read by
    the Prometheus project's own parser (python3-prometheus-client)."""
    from prometheus_client.parser import text_string_to_metric_families
    out, families = {}, {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, families

@pytest.mark.slow(15)
def test_metrics(relay_daemon, slow_retry, workdir):
    textfile_dir = os.path.join(workdir, "textfile")   # as node exporter's, writable by outboxd
    os.makedirs(textfile_dir)
    if IS_ROOT:
        os.chown(textfile_dir, pwd.getpwnam("outbox").pw_uid, -1)
    path = os.path.join(textfile_dir, "outbox.prom")
    extra = dict(slow_retry, log={"metrics_file": path})
    d, up = relay_daemon(extra=extra)
    one_sent_one_deferred(d, up)
    r = tool(d, "metrics")
    assert r.returncode == 0, r.stderr
    m, fam = parse_metrics(r.stdout)
    assert m[("outbox_messages_received_total", (("way", "socket"),))] == 2
    assert m[("outbox_messages_received_total", (("way", "pickup"),))] == 0
    relay = (("relay", "localhost"),)                      # [relay] is named by its host
    assert m[("outbox_recipients_sent_total", relay)] == 1
    assert m[("outbox_recipients_deferred_total", relay)] == 1
    assert m[("outbox_queue_messages", (("state", "deferred"),))] == 1
    assert m[("outbox_queue_messages", (("state", "held"),))] == 0
    assert 0 <= m[("outbox_queue_oldest_message_age_seconds", ())] < 60
    assert m[("outbox_delivery_latency_seconds_count", ())] == 1
    assert m[("outbox_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert m[("outbox_upstream_sessions_opened_total", relay)] >= 1
    assert m[("outbox_upstream_sessions_failed_total", (("reason", "connect"), ("relay", "localhost")))] == 0
    assert fam["outbox_messages_received"] == "counter"
    assert fam["outbox_delivery_latency_seconds"] == "histogram"
    assert fam["outbox_queue_messages"] == "gauge"
    # the file: written at the start, then every 15 s, whole each time
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if parse_metrics(text)[0].get(("outbox_recipients_sent_total", relay), 0) == 1:
                break
        time.sleep(0.5)
    fm, _ = parse_metrics(text)
    assert fm[("outbox_recipients_sent_total", relay)] == 1, text
    assert os.listdir(textfile_dir) == ["outbox.prom"]     # no temporary file left
    assert os.stat(path).st_mode & 0o777 == 0o644           # node exporter's user reads it
    assert "metrics_file" not in d.log()                    # no complaint


@pytest.mark.skipif(not IS_ROOT, reason="the daemon must run as another user than the directory's")
def test_metrics_file_that_cannot_be_written_is_said_once(relay_daemon, workdir):
    d, up = relay_daemon(extra={"log": {"metrics_file": os.path.join(workdir, "m.prom")}})
    d.wait_log(r"warning: \[log\] metrics_file .*m\.prom: Permission denied")
    submit(d, ["ok@r.example"])
    up.wait_for(1)
    assert tool(d, "status").returncode == 0
    assert d.log().count("metrics_file") == 1
