"""`outbox setup PROVIDER ADDRESS` end to end against local stand-ins
(issue 21, points 5 and 6): the preset with explicit keys that win over
it (--set), the secret piped on standard input into a root:outbox 0640
file, the probe's verdict, outboxd's reload seen in its log, the test
message as the upstream received it, a second run refused without
--force; and an OAuth2 preset whose login runs the device flow against
the suite's token endpoint."""

import grp
import os
import stat
import subprocess

import pytest

from conftest import IS_ROOT, OUTBOX
from oauth2_server import OAuth2Server
from test_delivery import send

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="outbox setup runs as root")

ADDRESS = "you@gmail.example"
SECRET = "app-pw-4711"


def run_setup(d, *args, stdin=""):
    return subprocess.run([OUTBOX, "-C", d.conf, "setup"] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=90)


def bare_daemon(make_daemon, start=True):
    """An outboxd whose main file says nothing of its relay (the package's
    outbox.conf leaves [relay] to the snippet)."""
    d = make_daemon(start=False, extra={"queue": {"retry_min": "1s", "retry_max": "4s"}})
    d.sections["relay"] = {}
    d.write_conf()
    if start:
        d.start()
    return d


def assert_root_outbox_0640(path):
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, grp.getgrnam("outbox").gr_gid, 0o640)


def local(up):
    return ["--set", "host=localhost", "--set", "port=%d" % up.port, "--set", "ca_file=" + up.ca_file]


def test_setup_with_an_app_password_end_to_end(make_daemon, make_upstream):
    up = make_upstream(users={ADDRESS: SECRET})
    d = bare_daemon(make_daemon)
    r = run_setup(d, "gmail", ADDRESS, *local(up), "--test", stdin=SECRET + "\n")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert SECRET not in out
    # the probe ran and its verdict is shown; outboxd was reloaded
    assert "result: ok" in r.stdout and "the probe passed" in r.stdout, out
    assert "SIGHUP to pid %d" % d.proc.pid in r.stdout, out
    d.wait_log(r"configuration reloaded from %s" % d.conf)
    # the files: the snippet and the secret, root:outbox 0640
    snippet = os.path.join(d.base, "outbox.conf.d", "50-relay.conf")
    secret = os.path.join(d.base, "gmail.secret")
    assert_root_outbox_0640(snippet)
    assert_root_outbox_0640(secret)
    with open(secret) as f:
        assert f.read() == SECRET + "\n"
    text = open(snippet).read()
    for line in ("provider = gmail", "user = " + ADDRESS, "password_file = " + secret, "host = localhost",
                 "port = %d" % up.port):
        assert line + "\n" in text, text
    assert [n for n in os.listdir(d.base) if n.startswith(".")] == []  # no temporary left
    # the test message, as the upstream got it
    (m,) = up.wait_for(1)
    assert (m.mail_from, m.rcpt_tos, m.login) == (ADDRESS, [ADDRESS], ADDRESS)
    assert b"\r\nSubject: outbox setup: a test message from " in b"\r\n" + m.data
    assert b"From: " + ADDRESS.encode() + b"\r\n" in m.data
    assert m.data.endswith(b"\r\n\r\noutbox setup gmail sent this through Gmail (a consumer Google account).\r\n")
    # outbox config: the preset's values marked, the explicit host winning over smtp.gmail.com
    c = d.outbox("config").stdout
    assert "\nworkers = 2    # provider gmail\n" in c, c
    assert "\nmax_rate = 500/d    # provider gmail\n" in c, c
    assert "\nhost = localhost    # %s\n" % snippet in c, c
    # a second run is refused, and changes nothing
    before = os.stat(snippet)
    r2 = run_setup(d, "gmail", ADDRESS, *local(up), "--no-test", stdin="other\n")
    assert r2.returncode == 73, r2.stdout + r2.stderr
    assert "exists: --force replaces it" in r2.stderr
    after = os.stat(snippet)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert open(secret).read() == SECRET + "\n"


def test_a_refused_configuration_installs_nothing(make_daemon):
    """ses has no host without a region: the check refuses the snippet
    before it is in place, and the secret just written goes again."""
    d = bare_daemon(make_daemon, start=False)
    r = run_setup(d, "ses", "ops@example.org", "--no-test", stdin="ses-smtp-password\n")
    assert r.returncode == 78, r.stdout + r.stderr
    assert "set host = email-smtp.REGION.amazonaws.com" in r.stderr
    assert "%s/outbox.conf.d/50-relay.conf" % d.base in r.stderr     # the real name, not the check's copy
    assert not os.path.exists(os.path.join(d.base, "outbox.conf.d", "50-relay.conf"))
    assert not os.path.exists(os.path.join(d.base, "ses.secret"))
    assert [n for n in os.listdir(d.base) if n.startswith(".")] == []


def test_a_failed_probe_stops_before_the_reload(make_daemon, make_upstream):
    up = make_upstream(users={ADDRESS: SECRET})
    d = bare_daemon(make_daemon)
    r = run_setup(d, "gmail", ADDRESS, *local(up), "--test", stdin="wrong-password\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "result: failed at AUTH" in r.stdout and "outboxd is not reloaded" in r.stdout, r.stdout
    assert "configuration reloaded" not in d.log()
    assert up.messages == []


def test_setup_with_oauth2_runs_the_login(make_daemon, make_upstream, certs, workdir):
    """microsoft365 logs in with OAuth2: setup runs outbox oauth2 login
    (the device flow here, against the suite's token endpoint), which
    stores the refresh token as the daemon's user in the directory setup
    made for it; the preset's scope is what the login asks for."""
    up = make_upstream(users={})
    srv = OAuth2Server(certs, up, approve_after=1).start()
    try:
        d = bare_daemon(make_daemon)
        token = os.path.join(workdir, "oauth2", "m365-token")
        r = run_setup(d, "microsoft365", "me@example.com", "--client-id", "outbox-test", *local(up),
                  "--set", "oauth2_token_url=" + srv.url("/token"),
                  "--set", "oauth2_device_url=" + srv.url("/device"),
                  "--set", "oauth2_refresh_token_file=" + token, "--no-test")
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert srv.url("/verify") in r.stdout and "WDJB-MJHT" in r.stdout, out
        device = [f for p, f in srv.requests if p == "/device"]
        assert device == [{"client_id": "outbox-test",
                           "scope": "https://outlook.office.com/SMTP.Send offline_access"}]
        st = os.stat(os.path.dirname(token))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (os.stat(d.spool).st_uid, 0o700)
        assert open(token).read() == "refresh-device\n"
        assert "auth: XOAUTH2 as me@example.com: ok" in r.stdout, out
        d.wait_log(r"configuration reloaded")
        c = d.outbox("config").stdout
        assert "\nworkers = 3    # provider microsoft365\n" in c and "\nmax_rate = 30/m    # provider" in c, c
        assert "oauth2_scope = https://outlook.office.com/SMTP.Send offline_access    # provider" in c, c
        send(d, ["a@r.example"])
        (m,) = up.wait_for(1)
        assert m.login == "me@example.com"
    finally:
        srv.stop()


def test_setup_refuses_what_it_cannot_do(make_daemon):
    d = bare_daemon(make_daemon, start=False)
    r = run_setup(d, "gmial", ADDRESS)
    assert r.returncode == 64 and "unknown provider 'gmial'" in r.stderr
    r = run_setup(d, "gmail", "not an address")
    assert r.returncode == 64
    for bad in (["--set", "host=evil\n[queue]"], ["--user", "u\nhost = evil"], ["--client-id", "c ; x"]):
        r = run_setup(d, "gmail", ADDRESS, *bad)
        assert r.returncode == 64, bad
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", OUTBOX, "-C", d.conf,
                        "setup", "gmail", ADDRESS], capture_output=True, text=True, timeout=30)
    assert r.returncode == 77 and "run it as root" in r.stderr
