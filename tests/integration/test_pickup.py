"""The pickup directory (daemon/pickup.c, SPEC "Ways in" 3): a file
renamed from pickup/tmp/ into pickup/new/ is queued through the intake
once, with its envelope from leading X-Sender:/X-Receiver: lines or from
its headers as sendmail -t does; a file that cannot be a message goes to
pickup/bad/ and costs no other.  A kill at each step of taking a file
(pickup/taking/, daemon/pickup_take.c) is tested in
test_local_adversary_pickup.py.  Each test asserts on what the upstream
received."""

import collections
import os
import re
import subprocess
import time

from conftest import IS_ROOT


def drop(d, name, data):
    """Write a file into pickup/tmp/ and rename it into pickup/new/."""
    tmp = os.path.join(d.spool, "pickup", "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(d.spool, "pickup", "new", name))
    return os.path.join(d.spool, "pickup", "new", name)


def new_files(d):
    return os.listdir(os.path.join(d.spool, "pickup", "new"))


def test_envelope_from_x_lines(relay_daemon):
    d, up = relay_daemon()
    drop(d, "m1", b"X-Sender: app@sender.example\nX-Receiver: one@r.example\n"
                  b"X-Receiver: <two@r.example>\nTo: shown@r.example\nSubject: x\n\nbody\n")
    m = up.wait_for(1)[0]
    assert m.mail_from == "app@sender.example"
    assert sorted(m.rcpt_tos) == ["one@r.example", "two@r.example"]
    assert b"X-Sender" not in m.data and b"X-Receiver" not in m.data
    assert b"\r\nSubject: x\r\n" in m.data and m.data.endswith(b"\r\n\r\nbody\r\n")
    assert re.search(rb"Received: from local \(uid %d\b" % os.getuid(), m.data)
    assert b"Date: " in m.data and b"Message-ID: <" in m.data
    d.wait_log(r"uid=%d via=pickup from=<app@sender.example>" % os.getuid())
    assert new_files(d) == []


def test_envelope_from_headers_as_sendmail_t(relay_daemon):
    d, up = relay_daemon(extra={"senders": {"*": "cron@sender.example"}})
    drop(d, "m2", b"To: a@r.example\nCc: b@r.example\nBcc: hidden@r.example\nSubject: t\n\nb\n")
    m = up.wait_for(1)[0]
    assert sorted(m.rcpt_tos) == ["a@r.example", "b@r.example", "hidden@r.example"]
    assert b"Bcc" not in m.data and b"hidden" not in m.data
    assert m.mail_from == "cron@sender.example"     # the file's owner, through [senders]


def test_bad_files_go_to_bad_and_cost_no_other(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"max_message_size": "10K"}})
    bad = {
        "norcpt": b"Subject: nobody\n\nb\n",
        "binary": b"To: a@r.example\n\n\x00\x01\x02",
        "huge": b"To: a@r.example\n\n" + b"x" * 20000,
        "badaddr": b"X-Receiver: not an address\n\nb\n",
    }
    for name, data in bad.items():
        drop(d, name, data)
    os.mkdir(os.path.join(d.spool, "pickup", "new", "adir"))
    os.symlink("/etc/passwd", os.path.join(d.spool, "pickup", "new", "alink"))
    drop(d, "good", b"To: good@r.example\nSubject: good\n\nfine\n")
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["good@r.example"]
    for name in list(bad) + ["alink"]:
        d.wait_log(r"pickup/new/%s: moved to pickup/bad/%s: " % (name, name))
    assert sorted(os.listdir(os.path.join(d.spool, "pickup", "bad"))) == sorted(list(bad) + ["alink"])
    assert "no recipients" in d.log() and "NUL" in d.log() and "symbolic link" in d.log()
    # a directory outboxd may not move (another's) stays, said once
    d.wait_log(r"pickup/new/adir: cannot be taken \(not a regular file\), and moving it")
    time.sleep(4.5)                 # two rescans
    assert d.log().count("pickup/new/adir") == 1
    assert new_files(d) == ["adir"]
    assert len(up.messages) == 1


def test_500_files_at_once_each_once(relay_daemon):
    d, up = relay_daemon()
    d.stop()        # dropped while outboxd is down: taken at start
    for i in range(250):
        drop(d, "f%d" % i, b"To: f%d@r.example\nSubject: f\n\nf %d\n" % (i, i))
    d.start()
    for i in range(250, 500):
        drop(d, "f%d" % i, b"To: f%d@r.example\nSubject: f\n\nf %d\n" % (i, i))
    up.wait_for(500, timeout=60)
    time.sleep(1)
    got = collections.Counter(m.rcpt_tos[0] for m in up.messages)
    assert got == collections.Counter("f%d@r.example" % i for i in range(500))
    for m in up.messages:
        i = int(m.rcpt_tos[0][1:].split("@")[0])
        assert m.data.endswith(b"\r\n\r\nf %d\r\n" % i)
    assert new_files(d) == []


def test_local_names_go_through_aliases_as_on_the_socket(relay_daemon):
    """Bare local names in a pickup file follow [aliases] (an alias of
    an alias too) and are qualified, as a recipient on the socket is."""
    d, up = relay_daemon(extra={"aliases": {"root": "ops, boss@r.example", "ops": "alice, bob@r.example"},
                                "address": {"domain": "client.example"}})
    drop(d, "cron", b"To: root\nSubject: cron\n\nout\n")
    drop(d, "xr", b"X-Receiver: ops\nX-Receiver: carol\nSubject: x\n\nb\n")
    up.wait_for(2)
    got = sorted(sorted(m.rcpt_tos) for m in up.messages)
    assert got == [["alice@client.example", "bob@r.example", "boss@r.example"],
                   ["alice@client.example", "bob@r.example", "carol@client.example"]]
