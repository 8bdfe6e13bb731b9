"""The DSN request (RFC 3461) taken on every way in and kept with the
message (issue 23 point 1): the socket's and the TCP listener's MAIL and
RCPT parameters, the sendmail command's -N -R -V, pickup's X-Sender: and
X-Receiver: lines; the queue record (version 2 only when asked) and what
outbox show and outbox queue --json say of it."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import IS_ROOT, RawClient, bucket_of

MSG = b"From: a@client.example\r\nSubject: dsn\r\n\r\nbody\r\n"


def header_lines(d, qid):
    """The queue file's header lines (up to "end")."""
    data = d.queue_file(qid)
    return data.split(b"\nend\n", 1)[0].decode().split("\n")


def submit_raw(c, mail, rcpts, ok=True):
    """One transaction on a RawClient; the queue ID."""
    assert c.cmd(mail)[0] == 250
    for r in rcpts:
        assert c.cmd(r)[0] == 250, r
    assert c.cmd(b"DATA")[0] == 354
    code, text = c.cmd(MSG + b".")
    assert code == 250, text
    return text.decode().rsplit(" ", 1)[1]


def show(d, qid):
    """`outbox show`'s lines before the headers; a recipient's last
    reason (a try may have ended meanwhile: it follows in brackets) cut."""
    r = d.outbox("show", qid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n\n", 1)[0].split("\n")
    return [re.sub(r" \(.*\)$", "", l) if l.startswith("recipient:") else l for l in lines]


def queue_json(d, qid):
    r = d.outbox("queue", "--json")
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        m = json.loads(line)
        if m["id"] == qid:
            return m
    raise AssertionError("%s not listed: %s" % (qid, r.stdout))


# ---- the socket and the TCP listener ----

def test_ehlo_advertises_dsn(daemon):
    c = daemon.raw()
    code, text = c.cmd(b"EHLO me")
    assert code == 250 and b"\n250-DSN\n" in text + b"\n", text
    c.close()


def test_parameters_are_kept_and_shown(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO me")
    qid = submit_raw(c, b"MAIL FROM:<a@client.example> RET=hdrs ENVID=Q+2B1/x",
                     [b"RCPT TO:<b@x.example> NOTIFY=success,Failure ORCPT=rfc822;b+2Bo@x.example",
                      b"RCPT TO:<c@x.example> notify=NEVER",
                      b"RCPT TO:<d@x.example>"])
    c.close()
    head = header_lines(daemon, qid)
    assert head[0] == "outbox-queue 2"
    assert "ret HDRS" in head and "envid Q+2B1/x" in head
    assert "rcpt Q <b@x.example> notify=SUCCESS,FAILURE orcpt=rfc822;b+2Bo@x.example" in head
    assert "rcpt Q <c@x.example> notify=NEVER" in head
    assert "rcpt Q <d@x.example>" in head
    lines = show(daemon, qid)
    assert "ret: HDRS" in lines and "envid: Q+2B1/x" in lines
    rl = [l for l in lines if l.startswith("recipient:")]
    assert rl[0].startswith("recipient: <b@x.example> ") and \
        rl[0].endswith(" notify=SUCCESS,FAILURE orcpt=rfc822;b+2Bo@x.example"), rl
    assert rl[1].startswith("recipient: <c@x.example> ") and rl[1].endswith(" notify=NEVER"), rl
    assert "notify" not in rl[2] and "orcpt" not in rl[2], rl
    m = queue_json(daemon, qid)
    assert m["ret"] == "HDRS" and m["envid"] == "Q+2B1/x"
    r = {x["address"]: x for x in m["recipients"]}
    assert r["b@x.example"]["notify"] == "SUCCESS,FAILURE"
    assert r["b@x.example"]["orcpt"] == "rfc822;b+2Bo@x.example"
    assert r["c@x.example"]["notify"] == "NEVER" and "orcpt" not in r["c@x.example"]
    assert "notify" not in r["d@x.example"]


def test_plain_mail_keeps_version_1(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO me")
    qid = submit_raw(c, b"MAIL FROM:<a@client.example>", [b"RCPT TO:<b@x.example>"])
    c.close()
    assert header_lines(daemon, qid)[0] == "outbox-queue 1"
    lines = show(daemon, qid)
    assert not [l for l in lines if l.startswith(("ret:", "envid:"))]
    m = queue_json(daemon, qid)
    assert "ret" not in m and "envid" not in m and "notify" not in m["recipients"][0]


ENVID_94 = b"e" * 94      # "ENVID=" + 94 = 100 characters: RFC 3461 4.4's limit
ORCPT_494 = b"rfc822;" + b"o" * 487   # "ORCPT=" + 494 = 500: 4.2's limit

BAD_MAIL = [
    (b"RET=X", 501), (b"RET=FULL RET=HDRS", 501), (b"RET=FULL ret=full", 501),
    (b"ENVID=a+2", 501), (b"ENVID=", 501), (b"ENVID=a+0Ab", 501), (b"ENVID=a+4a", 501),
    (b"ENVID=a ENVID=b", 501), (b"ENVID=" + ENVID_94 + b"e", 501), (b"XFOO=1", 555),
]
BAD_RCPT = [
    (b"NOTIFY=NEVER,SUCCESS", 501), (b"NOTIFY=BOGUS", 501), (b"NOTIFY=", 501),
    (b"NOTIFY=SUCCESS,SUCCESS", 501), (b"NOTIFY=SUCCESS NOTIFY=FAILURE", 501),
    (b"ORCPT=rfc822", 501), (b"ORCPT=rfc822;", 501), (b"ORCPT=rfc822;a+0Ab", 501),
    (b"ORCPT=rfc822;a ORCPT=rfc822;b", 501), (b"ORCPT=" + ORCPT_494 + b"o", 501),
    (b"ORCPT=rfc822;\xc3\xa9@x.example", 501), (b"FOO=bar", 555),
]


@pytest.mark.parametrize("tcp", [False, True])
def test_malformed_refused_and_session_goes_on(make_daemon, tcp):
    """Each malformed parameter gets its code with 5.5.4, changes nothing,
    and the session goes on: the limits themselves are taken.  (Two
    sessions: one takes 20 refusals, MAX_BAD_COMMANDS.)"""
    d = make_daemon(tcp=tcp)

    def connect():
        c = d.raw() if not tcp else RawClient(tcp=("127.0.0.1", d.tcp_port))
        c.cmd(b"EHLO me")
        return c

    c = connect()
    for param, code in BAD_MAIL:
        got, text = c.cmd(b"MAIL FROM:<a@client.example> " + param)
        assert (got, text[4:9]) == (code, b"5.5.4"), (param, text)
    qid1 = submit_raw(c, b"MAIL FROM:<a@client.example> ENVID=" + ENVID_94, [b"RCPT TO:<b@x.example>"])
    c.close()
    assert "envid " + ENVID_94.decode() in header_lines(d, qid1)
    c = connect()
    assert c.cmd(b"MAIL FROM:<a@client.example>")[0] == 250
    for param, code in BAD_RCPT:
        got, text = c.cmd(b"RCPT TO:<b@x.example> " + param)
        assert (got, text[4:9]) == (code, b"5.5.4"), (param, text)
    assert c.cmd(b"RCPT TO:<b@x.example> ORCPT=" + ORCPT_494)[0] == 250
    assert c.cmd(b"DATA")[0] == 354
    code, text = c.cmd(MSG + b".")
    assert code == 250
    qid2 = text.decode().rsplit(" ", 1)[1]
    c.close()
    assert [l for l in header_lines(d, qid2) if l.startswith("rcpt ")] == \
        ["rcpt Q <b@x.example> orcpt=" + ORCPT_494.decode()]


def test_parameters_need_ehlo(daemon):
    c = daemon.raw()
    c.cmd(b"HELO me")
    code, text = c.cmd(b"MAIL FROM:<a@client.example> RET=FULL")
    assert code == 555, text
    assert c.cmd(b"MAIL FROM:<a@client.example>")[0] == 250
    assert c.cmd(b"RCPT TO:<b@x.example> NOTIFY=NEVER")[0] == 555
    c.close()


def test_aliased_recipient_carries_the_request(make_daemon):
    d = make_daemon(extra={"aliases": {"team": "p@x.example, q@x.example"}})
    c = d.raw()
    c.cmd(b"EHLO me")
    qid = submit_raw(c, b"MAIL FROM:<a@client.example>", [b"RCPT TO:<team> NOTIFY=DELAY"])
    c.close()
    head = header_lines(d, qid)
    assert "rcpt Q <p@x.example> notify=DELAY" in head
    assert "rcpt Q <q@x.example> notify=DELAY" in head


# ---- the upgrade: a file of the version before ----

def test_version_1_file_is_delivered_after_the_upgrade(relay_daemon):
    """A queue file as the release before wrote it (version 1, one
    recipient already delivered) goes out unchanged: the decoder of
    version 2 still reads it."""
    d, up = relay_daemon(start=False)
    d.start()
    d.stop()
    qid = "6B0E000000000ABD"
    path = os.path.join(d.spool, "queue", bucket_of(qid), qid)
    with open(path, "wb") as f:
        f.write(b"outbox-queue 1\narrival 1800000000.000000\nuid 1000\n"
                b"flags 8bitmime=0 smtputf8=0\nfrom <old@s.example>\n"
                b"rcpt D <done@r.example>\nrcpt Q <due@r.example>\nend\n"
                b"Subject: from before\r\n\r\nold body\r\n")
    if IS_ROOT:
        subprocess.run(["chown", "outbox:outbox", path], check=True)
    d.start()
    up.wait_for(1, timeout=30)
    time.sleep(0.5)
    assert len(up.messages) == 1
    m = up.messages[0]
    assert m.mail_from == "old@s.example" and m.rcpt_tos == ["due@r.example"]
    assert m.data.endswith(b"Subject: from before\r\n\r\nold body\r\n")
    assert d.queue_ids() == []


# ---- the sendmail command: -N, -R, -V ----

def wait_queued(d, n=1, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = d.queue_ids()
        if len(ids) >= n:
            return ids
        time.sleep(0.05)
    raise AssertionError("nothing queued:\n" + d.log())


def test_sendmail_dsn_flags_are_kept_and_shown(daemon):
    r = daemon.sendmail(["-N", "success,failure", "-R", "hdrs", "-V", "abc", "r@x.example",
                         "s@x.example"], b"Subject: s\n\nbody\n")
    assert r.returncode == 0, r.stderr
    (qid,) = wait_queued(daemon)
    lines = show(daemon, qid)
    assert "ret: HDRS" in lines and "envid: abc" in lines
    rl = [l for l in lines if l.startswith("recipient:")]
    assert len(rl) == 2 and all(l.endswith(" notify=SUCCESS,FAILURE") for l in rl), rl


def test_sendmail_envid_is_sent_as_xtext(daemon):
    r = daemon.sendmail(["-V", "a b+c", "-N", "never", "r@x.example"], b"Subject: s\n\nbody\n")
    assert r.returncode == 0, r.stderr
    (qid,) = wait_queued(daemon)
    head = header_lines(daemon, qid)
    assert "envid a+20b+2Bc" in head and "rcpt Q <r@x.example> notify=NEVER" in head


@pytest.mark.parametrize("args", [["-N", "bogus"], ["-N", "never,success"], ["-R", "headers"],
                                  ["-V", "x" * 95], ["-V", "a\tb"]])
def test_sendmail_bad_dsn_value_is_a_usage_error(daemon, args):
    r = daemon.sendmail(args + ["r@x.example"], b"Subject: s\n\nbody\n")
    assert r.returncode == 64, r.stderr
    assert args[1].encode() in r.stderr
    assert daemon.queue_ids() == []


def test_sendmail_fallback_writes_the_request_into_pickup(daemon):
    """outboxd stopped: the file in pickup/new/ carries the request on its
    X-Sender:/X-Receiver: lines, and outboxd keeps it when it starts."""
    daemon.stop()
    r = daemon.sendmail(["-f", "me@s.example", "-N", "delay", "-R", "full", "-V", "id 7",
                         "r@x.example"], b"Subject: later\n\nbody\n")
    assert r.returncode == 0, r.stderr
    new = os.path.join(daemon.spool, "pickup", "new")
    (name,) = os.listdir(new)
    data = open(os.path.join(new, name), "rb").read()
    assert data.startswith(b"X-Sender: <me@s.example> RET=FULL ENVID=id+207\n"
                           b"X-Receiver: <r@x.example> NOTIFY=DELAY\n"), data[:200]
    daemon.start()
    (qid,) = wait_queued(daemon)
    head = header_lines(daemon, qid)
    assert "ret FULL" in head and "envid id+207" in head
    assert "rcpt Q <r@x.example> notify=DELAY" in head


# ---- pickup's X-Sender: and X-Receiver: lines (Exchange's convention) ----

def drop(d, name, data):
    tmp = os.path.join(d.spool, "pickup", "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(d.spool, "pickup", "new", name))


def test_pickup_lines_carry_the_request(daemon):
    drop(daemon, "dsn", b"X-Sender: <app@s.example> BODY=8BITMIME RET=HDRS ENVID=pk+2B1\n"
                        b"X-Receiver: <one@r.example> NOTIFY=success ORCPT=rfc822;one@r.example\n"
                        b"X-Receiver: two@r.example\nSubject: x\n\nbody\n")
    (qid,) = wait_queued(daemon)
    head = header_lines(daemon, qid)
    assert head[0] == "outbox-queue 2"
    assert "ret HDRS" in head and "envid pk+2B1" in head
    assert "rcpt Q <one@r.example> notify=SUCCESS orcpt=rfc822;one@r.example" in head
    assert "rcpt Q <two@r.example>" in head


@pytest.mark.parametrize("line,why", [
    (b"X-Receiver: <a@r.example> NOTIFY=NEVER,SUCCESS", "Bad NOTIFY parameter syntax"),
    (b"X-Receiver: <a@r.example> ORCPT=rfc822", "Bad ORCPT parameter syntax"),
    (b"X-Receiver: <a@r.example> NOTIFY=NEVER NOTIFY=NEVER", "Duplicate NOTIFY parameter"),
    (b"X-Receiver: <a@r.example> FOO=1", "Unsupported parameter of a recipient"),
    (b"X-Sender: <a@s.example> RET=ALL\nX-Receiver: <a@r.example>", "Bad RET parameter syntax"),
    (b"X-Sender: <a@s.example> ENVID=a+0Ab\nX-Receiver: <a@r.example>", "Bad ENVID parameter syntax"),
])
def test_pickup_bad_request_goes_to_bad(daemon, line, why):
    drop(daemon, "bad", line + b"\nSubject: x\n\nbody\n")
    daemon.wait_log(r"pickup/new/bad: moved to pickup/bad/bad: .*%s" % why)
    assert daemon.queue_ids() == []


@pytest.mark.parametrize("fallback", [False, True])
def test_a_quoted_gt_in_an_address_is_kept_and_delivered(relay_daemon, fallback):
    """"a>b"@x is an address (a quoted local part, RFC 5321 4.1.2): the
    queue record and pickup's X-Sender:/X-Receiver: lines keep it whole,
    through the socket and through the sendmail command's fallback while
    outboxd is stopped, and the upstream gets it (found by review: both
    cut the path at the first '>'; the queue file went to corrupt/ after
    sendmail said 0, the pickup file to bad/)."""
    from test_delivery import wait_queue_empty
    d, up = relay_daemon()
    if fallback:
        d.stop()
    r = d.sendmail(["-f", '"s>t"@sender.example', "-N", "success", '"a>b"@r.example'],
                   b"Subject: gt\n\nbody\n")
    assert r.returncode == 0, r.stderr
    if fallback:
        d.start()
    # the message, and (-N success, a relay without DSN) our relayed notice
    msgs = up.wait_for(2)
    wait_queue_empty(d)
    assert len(up.messages) == 2, [(x.mail_from, x.rcpt_tos) for x in up.messages]
    (m,) = [x for x in msgs if not up.is_report(x)]
    assert m.mail_from == '"s>t"@sender.example' and m.rcpt_tos == ['"a>b"@r.example']
    (notice,) = up.reports()
    assert notice.rcpt_tos == ['"s>t"@sender.example']
    assert b"Action: relayed" in notice.data
    assert "corrupt" not in d.log() and "pickup/bad" not in d.log()
