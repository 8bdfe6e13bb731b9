"""A hostile local user, a hostile upstream or a hostile token endpoint
against what outbox writes (issue 19, points 5 and 7): no output can
drive a terminal or forge a log line, the metrics file cannot be made to
block or to follow a link, and an operator's flush means now.

Escaping: C0 and C1 controls, DEL and malformed UTF-8 reach a log line
or the admin's terminal only as \\xHH (common/escape.h).  Each test
sends the hostile bytes through the real way in (a message header, an
SMTP reply, a token endpoint's JSON, a pickup file's name) and asserts
on the raw bytes of outboxd's log or of the tool's output."""

import json
import os
import re
import signal
import stat
import subprocess
import time

import pytest

from conftest import IS_ROOT
from oauth2_server import OAuth2Server
from test_control import NOBODY, deferred, submit
from test_delivery import send, wait_queue_empty
from test_oauth2 import oauth2  # noqa: F401 (a fixture)
from test_pickup import drop
from test_relays import relays  # noqa: F401 (a fixture)

ESC = b"\x1b"
C1_CSI = "\u009b".encode()            # U+009B as UTF-8: CSI to an 8-bit terminal
RAW = (ESC, b"\x07", C1_CSI, b"\r")


def log_bytes(d):
    with open(d.log_path, "rb") as f:
        return f.read()


def assert_no_raw_controls(data, what):
    for c in RAW:
        assert c not in data, "%r raw in %s:\n%r" % (c, what, data[-3000:])


def run_tool(d, *args, user=None):
    """outbox ARGS, its output as bytes (the terminal's view)."""
    return subprocess.run(d.command(args, user=user), capture_output=True, timeout=60,
                          env=dict(os.environ, OUTBOX_CONF=d.conf))


# ---- the admin's terminal ----

def test_show_prints_a_hostile_header_escaped(daemon):
    """outboxd sends `outbox show` the header lines as they are; the tool
    prints their controls escaped, whatever the daemon sends."""
    subject = b"Subject: \x1b]0;owned\x07 \x1b[2J\xc2\x9b31m hi \xff\n"
    r = daemon.sendmail(["a@r.example"], subject + b"To: a@r.example\n\nbody\n")
    assert r.returncode == 0, r.stderr
    (qid,) = set(daemon.queue_ids())
    s = run_tool(daemon, "show", qid)
    assert s.returncode == 0, s.stderr
    assert_no_raw_controls(s.stdout, "outbox show")
    assert b"\xff" not in s.stdout                      # malformed UTF-8: escaped too
    assert b"Subject: \\x1B]0;owned\\x07 \\x1B[2J\\xC2\\x9B31m hi \\xFF" in s.stdout, s.stdout


def test_queue_prints_a_hostile_reply_escaped_and_json_stays_json(relay_daemon):
    """An upstream's reply is shown by `outbox queue` and `outbox status`:
    an ESC or a C1 control in it is escaped; --json stays valid JSON."""
    d, up = relay_daemon()
    up.mail_reply = "451 4.3.0 busy \x1b[31m\u009b2J now"
    submit(d, ["a@r.example"])
    deferred(d, 1)
    for args in (("queue",), ("status",)):
        r = run_tool(d, *args)
        assert r.returncode == 0, r.stderr
        assert_no_raw_controls(r.stdout, "outbox " + args[0])
    assert b"busy \\x1B[31m" in run_tool(d, "queue").stdout
    r = run_tool(d, "queue", "--json")
    assert_no_raw_controls(r.stdout, "outbox queue --json")
    (entry,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
    text = json.dumps(entry)
    assert "\x1b" not in text and "\u009b" not in text and "\\\\xC2\\\\x9B2J" in text, text


# ---- outboxd's log ----

def test_an_upstream_reply_is_logged_escaped(relay_daemon):
    d, up = relay_daemon()
    up.mail_reply = "451 4.3.0 x\x1b[2J\u009b31m\x7f\n2099-01-01T00:00:00.000 outboxd[1]: forged"
    send(d, ["a@r.example"])
    d.wait_log(r"status=deferred")
    log = log_bytes(d)
    assert_no_raw_controls(log, "the log")
    assert b"\x7f" not in log
    assert not re.search(rb"^2099-01-01", log, re.M), log          # no line of the reply's making


def test_a_pickup_file_name_is_logged_escaped(relay_daemon):
    """A file in pickup/new/ named with an ESC and a C1 control (a bad
    one, so that its name is logged, and moved to bad/)."""
    d, up = relay_daemon()
    name = "x\x1b[2J\u009b31m\x07y"
    drop(d, name, b"Subject: nobody\n\nb\n")
    d.wait_log(r"pickup/new/x.*moved to pickup/bad/")
    log = log_bytes(d)
    assert_no_raw_controls(log, "the log")
    assert b"pickup/new/x\\x1B[2J" in log


FORGED = "\n2099-01-01T00:00:00.000 outboxd[1]: FORGED status=sent\x1b[31m\u009b2J"


def test_a_token_endpoint_cannot_forge_a_log_line_through_the_access_token(oauth2):  # noqa: F811
    """outbox-oauth2 answers outboxd one line per item: an access_token
    with a newline would add lines of the endpoint's making ("note ..."
    is logged).  A token outside RFC 6749's VSCHAR is refused, never
    passed on nor quoted."""
    d, up, srv, _ = oauth2()
    srv.forge = FORGED.replace("\n", "\nnote ", 1)
    send(d, ["a@r.example"])
    d.wait_log(r"status=deferred")
    d.wait_log(r"characters RFC 6749 does not allow")
    log = log_bytes(d)
    assert_no_raw_controls(log, "the log")
    assert b"FORGED" not in log and srv.issued[0].encode() not in log
    assert up.messages == []


def test_a_token_endpoints_error_description_is_logged_escaped(oauth2):  # noqa: F811
    d, up, srv, _ = oauth2()
    srv.forge = FORGED
    srv.refresh_tokens = {"another"}                 # invalid_grant, with its error_description
    send(d, ["a@r.example"])
    d.wait_log(r"status=deferred")
    d.wait_log(r"invalid_grant")
    log = log_bytes(d)
    assert_no_raw_controls(log, "the log")
    assert not re.search(rb"^2099-01-01", log, re.M), log


# ---- the metrics file ----

@pytest.mark.slow(15)
@pytest.mark.parametrize("plant", ["fifo", "symlink"])
def test_metrics_file_ignores_what_is_planted_at_its_temporary_name(relay_daemon, workdir, plant):
    """Whoever may write beside [log] metrics_file plants a FIFO (which
    blocked a pool thread, and so the stop) or a link at the name the
    temporary file had (PATH.tmp.PID): outboxd keeps writing the metrics,
    leaves the planted name as it is, and stops at once on SIGTERM."""
    textfile_dir = os.path.join(workdir, "textfile")
    os.makedirs(textfile_dir)
    os.chmod(textfile_dir, 0o777)                    # anyone may write there: the attack
    path = os.path.join(textfile_dir, "outbox.prom")
    victim = os.path.join(workdir, "victim")
    with open(victim, "w") as f:
        f.write("keep\n")
    os.chmod(victim, 0o666)
    d, up = relay_daemon(extra={"log": {"metrics_file": path}})
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    first = os.stat(path)
    planted = "%s.tmp.%d" % (path, d.proc.pid)
    if plant == "fifo":
        os.mkfifo(planted, 0o666)
    else:
        os.symlink(victim, planted)
    # the next write is 15 s after the first: wait for it
    deadline = time.time() + 25
    while time.time() < deadline:
        st = os.stat(path)
        if (st.st_ino, st.st_mtime_ns) != (first.st_ino, first.st_mtime_ns):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("metrics_file not written again with %s planted" % plant)
    assert stat.S_ISREG(os.stat(path).st_mode)
    with open(victim) as f:
        assert f.read() == "keep\n"                  # the link was not followed
    mode = os.lstat(planted).st_mode
    assert stat.S_ISFIFO(mode) if plant == "fifo" else stat.S_ISLNK(mode)
    t0 = time.time()
    assert d.stop(timeout=10) == 0
    assert time.time() - t0 < 5
    assert "metrics_file" not in d.log()             # no complaint: it was never in the way
    assert sorted(os.listdir(textfile_dir)) == sorted(["outbox.prom", os.path.basename(planted)])


# ---- an operator's flush means now ----

SLOW = {"queue": {"retry_min": "1h", "retry_max": "2h"}}


def test_flush_clears_a_quota_hold_and_delivers_at_once(relays):  # noqa: F811
    """A relay answered a quota reply: it is held back for an hour.  The
    provider's quota is back; `outbox flush` must send now, not say "due
    now" and leave the message to the hold."""
    d, ups = relays(("relay", {}, {}), extra=SLOW)
    up = ups["relay"]
    up.mail_reply = "550 5.4.5 Daily user sending quota exceeded."
    send(d, ["a@r.example"])
    d.wait_log(r"relay localhost: held back for 3600 s after a quota or rate reply")
    deferred(d, 1)
    up.mail_reply = None
    t0 = time.time()
    r = d.outbox("flush")
    assert r.returncode == 0, r.stderr
    (m,) = up.wait_for(1, timeout=10)
    assert m.rcpt_tos == ["a@r.example"] and time.time() - t0 < 5
    d.wait_log(r"flush by uid %d: relay localhost: hold after a quota or rate reply cleared" % os.getuid())
    wait_queue_empty(d)


def test_flush_after_a_refused_auth_makes_one_login_not_one_per_message(relays):  # noqa: F811
    """The relay refused AUTH: it is down for its backoff (an hour here).
    A flush tries it at once with one session -- one login, however many
    messages wait and workers there are; once the login works again, a
    flush sends them all at once."""
    d, ups = relays(("relay", {"users": {"user1": "another-pw"}}, {"workers": "4"}), extra=SLOW)
    up = ups["relay"]
    for i in range(5):
        send(d, ["m%d@r.example" % i])
    deferred(d, 5)
    assert re.search(r"relay localhost: down for \d+ s", d.log())
    if IS_ROOT:                                     # an ordinary user's flush leaves relays alone
        before = len(up.auth_attempts)
        assert d.outbox("flush", user=NOBODY).returncode == 0
        time.sleep(2)
        assert len(up.auth_attempts) == before and "flush by uid %d" % NOBODY not in d.log()
    before = len(up.auth_attempts)
    downs = len(re.findall(r"relay localhost: down for \d+ s", d.log()))
    assert d.outbox("flush").returncode == 0
    d.wait_log(r"flush by uid %d: relay localhost: down after \d+ failed sessions?: cleared, one session "
               r"is tried now" % os.getuid())
    d.wait_log(r"relay localhost: down for \d+ s", count=downs + 1)
    time.sleep(2)                                   # any other login would come now
    assert len(up.auth_attempts) == before + 1, up.auth_attempts
    assert up.messages == []
    up.users["user1"] = "secret-pw"
    t0 = time.time()
    assert d.outbox("flush").returncode == 0
    got = sorted(m.rcpt_tos[0] for m in up.wait_for(5, timeout=10))
    assert got == ["m%d@r.example" % i for i in range(5)] and time.time() - t0 < 5
    wait_queue_empty(d)
