"""Submission over the Unix socket and TCP: what the client is told and
what is on disk afterwards."""

import os
import re
import subprocess
import threading

from conftest import IS_ROOT

QUEUED = re.compile(rb"2\.0\.0 Ok: queued as ([0-9A-F]{16})")


def queued_id(reply_text):
    m = QUEUED.search(reply_text)
    assert m, reply_text
    return m.group(1).decode()


def test_smtplib_submission_is_on_disk_when_acknowledged(daemon):
    body = b"Subject: hello\r\nFrom: a@sender.example\r\n\r\nline one\r\n.leading dot\r\n\xc3\xa9t\xc3\xa9\r\n"
    with daemon.smtp() as s:
        code, text = s.ehlo("app.example")
        for ext in (b"PIPELINING", b"SIZE", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES"):
            assert ext in text
        s.mail("a@sender.example")
        s.rcpt("b@rcpt.example")
        s.rcpt("c@rcpt.example")
        code, text = s.data(body)
    assert code == 250
    qid = queued_id(text)
    assert qid in daemon.queue_ids()
    env, msg = daemon.parse_queue_file(qid)
    assert env["from"] == "a@sender.example"
    assert env["rcpt"] == [("Q", "b@rcpt.example"), ("Q", "c@rcpt.example")]
    assert env["uid"] == str(os.getuid())  # SO_PEERCRED
    assert env["flags"] == "8bitmime=1 smtputf8=0"
    # the daemon's Received: line, then the message as sent
    assert msg.startswith(b"Received: from app.example (uid %d" % os.getuid())
    assert (b"with ESMTP id " + qid.encode()) in msg
    assert msg.endswith(body)
    assert re.search(r"%s: uid=%d from=<a@sender.example> size=%d nrcpt=2 \(queued\)"
                     % (qid, os.getuid(), len(msg)), daemon.log())


def test_curl_over_unix_socket(daemon, workdir):
    path = os.path.join(workdir, "mail.txt")
    with open(path, "wb") as f:
        f.write(b"Subject: via curl\r\n\r\nhello from curl\r\n")
    r = subprocess.run(["curl", "-sS", "--unix-socket", daemon.socket, "smtp://localhost/app.example",
                        "--mail-from", "curl@sender.example", "--mail-rcpt", "x@rcpt.example",
                        "--upload-file", path], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ids = daemon.queue_ids()
    assert len(ids) == 1
    env, msg = daemon.parse_queue_file(ids[0])
    assert env["from"] == "curl@sender.example" and env["rcpt"] == [("Q", "x@rcpt.example")]
    assert msg.endswith(b"Subject: via curl\r\n\r\nhello from curl\r\n")


def test_tcp_listener_same_protocol(make_daemon):
    d = make_daemon(tcp=True)
    import smtplib
    with smtplib.SMTP("127.0.0.1", d.tcp_port, timeout=10) as s:
        s.ehlo("tcp.example")
        assert s.has_extn("pipelining")
        refused = s.sendmail("t@sender.example", ["u@rcpt.example"], b"Subject: tcp\r\n\r\nx\r\n")
        assert refused == {}
    ids = d.queue_ids()
    assert len(ids) == 1
    env, msg = d.parse_queue_file(ids[0])
    assert env["uid"] == "-1"
    assert msg.startswith(b"Received: from tcp.example ([127.0.0.1]:")
    assert "client=[127.0.0.1]:" in d.log()


def test_peer_uid_of_another_user(daemon):
    if not IS_ROOT:
        import pytest
        pytest.skip("needs root to submit as another user")
    r = daemon.sendmail(["-f", "n@sender.example", "v@rcpt.example"], b"Subject: x\n\nbody\n", user=65534)
    assert r.returncode == 0, r.stderr
    env, msg = daemon.parse_queue_file(daemon.queue_ids()[0])
    assert env["uid"] == "65534"
    assert b"(uid 65534" in msg


def test_aliases_and_bare_names_are_rewritten(make_daemon):
    d = make_daemon(extra={"aliases": {"root": "admin@example.org, ops"},
                           "senders": {"*": "server1@example.org"}})
    with d.smtp() as s:
        s.ehlo("x")
        s.sendmail("cron", ["root", "ROOT", "bob"], b"Subject: a\r\n\r\nb\r\n")
    env, _ = d.parse_queue_file(d.queue_ids()[0])
    assert env["from"] == "server1@example.org"
    assert [a for _, a in env["rcpt"]] == ["admin@example.org", "ops@client.example", "bob@client.example"]


def test_many_concurrent_clients(make_daemon):
    daemon = make_daemon(extra={"listen": {"max_sessions_per_user": "100"}})  # one uid, 60 sessions
    n = 60
    results = [None] * n
    clients = [daemon.raw() for _ in range(n)]  # all connected at once

    def run(i):
        c = clients[i]
        c.cmd(b"EHLO c%d" % i)
        c.send(b"MAIL FROM:<s%d@sender.example>\r\nRCPT TO:<r@rcpt.example>\r\nDATA\r\n" % i)
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        code, text = c.cmd(b"Subject: %d\r\n\r\nclient %d\r\n." % (i, i))
        results[i] = (code, queued_id(text))
        c.cmd(b"QUIT")
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r and r[0] == 250 for r in results)
    assert sorted(r[1] for r in results) == daemon.queue_ids()
    for i, (_, qid) in enumerate(results):
        env, msg = daemon.parse_queue_file(qid)
        assert env["from"] == "s%d@sender.example" % i
        assert msg.endswith(b"client %d\r\n" % i)


def test_pipelined_transactions_in_one_write(daemon):
    c = daemon.raw()
    c.send(b"EHLO p\r\nMAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n"
           b"Subject: one\r\n\r\nfirst\r\n.\r\n"
           b"MAIL FROM:<c@s.example>\r\nRCPT TO:<d@r.example>\r\nDATA\r\n"
           b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
    codes = [c.reply()[0] for _ in range(10)]
    assert codes == [250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
    ids = daemon.queue_ids()
    assert len(ids) == 2
    bodies = sorted(daemon.parse_queue_file(i)[1].split(b"\r\n\r\n", 1)[1] for i in ids)
    assert bodies == [b"first\r\n", b"second\r\n"]


def test_local_sender_and_from_are_rewritten_through_senders(relay_daemon):
    """Mail from root on this host (cron's way: MAIL FROM:<root>, From:
    root (Cron Daemon)) leaves with the [senders] address in the
    envelope and in From:, the comment kept; a sender elsewhere is left
    as it is."""
    import socket as pysocket
    host = pysocket.gethostname()
    d, up = relay_daemon(extra={"senders": {"root": "cron@sender.example"}})
    with d.smtp() as s:
        s.sendmail("root", ["a@r.example"],
                   b"From: root (Cron Daemon)\r\nTo: a@r.example\r\nSubject: cron\r\n\r\nout\r\n")
        s.sendmail("root@%s" % host, ["b@r.example"],
                   b"From: \"Root\" <root@%s>\r\nSubject: two\r\n\r\nb\r\n" % host.encode())
        s.sendmail("me@else.example", ["c@r.example"],
                   b"From: root@else.example\r\nSubject: three\r\n\r\nc\r\n")
        s.sendmail("root@localhost", ["d@r.example"],
                   b"From: root@%s.invalid\r\nSubject: four\r\n\r\nd\r\n" % host.encode())
    up.wait_for(4)
    by = {m.rcpt_tos[0]: m for m in up.messages}
    assert by["a@r.example"].mail_from == "cron@sender.example"
    assert b"\r\nFrom: cron@sender.example (Cron Daemon)\r\n" in by["a@r.example"].data
    assert by["b@r.example"].mail_from == "cron@sender.example"
    assert b"\r\nFrom: \"Root\" <cron@sender.example>\r\n" in by["b@r.example"].data
    assert by["c@r.example"].mail_from == "me@else.example"
    assert b"\r\nFrom: root@else.example\r\n" in by["c@r.example"].data
    assert by["a@r.example"].data.endswith(b"Subject: cron\r\n\r\nout\r\n")
    assert by["d@r.example"].mail_from == "cron@sender.example"
    assert b"\r\nFrom: cron@sender.example\r\n" in by["d@r.example"].data
