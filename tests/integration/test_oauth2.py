"""Built-in OAuth2 (SPEC "OAuth2") against a local HTTPS authorization
server made at test time (oauth2_server.py, the test CA's certificate):
tokens fetched, reused, refreshed before expiry and once more after a
refused AUTH, a rotated refresh token stored 0600, the endpoint down
deferring, and the device flow of `outbox oauth2 login` end to end.
Asserted on the requests the endpoint got and on what the upstream
received with which token."""

import os
import pwd
import re
import shutil
import stat
import subprocess
import time

import pytest

from conftest import IS_ROOT, OUTBOX, _outbox_gid
from oauth2_server import OAuth2Server
from test_delivery import send, wait_queue_empty


def token_dir(workdir):
    """A directory for the refresh token: outboxd replaces the file, so the
    directory is outboxd's."""
    tokens = os.path.join(workdir, "tokens")
    os.makedirs(tokens, exist_ok=True)
    if IS_ROOT:
        shutil.chown(tokens, "outbox", "outbox")
    return tokens


def client_secret_file(workdir):
    """The client secret "the-client-secret" in a file root:outbox 0640."""
    secret = os.path.join(workdir, "client-secret")
    with open(secret, "w") as f:
        f.write("the-client-secret\n")
    os.chmod(secret, 0o640)
    if IS_ROOT:
        os.chown(secret, 0, _outbox_gid())
    return secret


@pytest.fixture
def oauth2(make_daemon, make_upstream, workdir, certs):
    """oauth2(server keywords, relay keys, token=True) -> (daemon, upstream,
    server, refresh token file)."""
    servers = []

    def make(server_kw=None, relay=None, token=True, start=True):
        up = make_upstream(users={})
        srv = OAuth2Server(certs, up, **(server_kw or {})).start()
        servers.append(srv)
        path = os.path.join(token_dir(workdir), "refresh")
        if token:
            with open(path, "w") as f:
                f.write("refresh-1\n")
            os.chmod(path, 0o600)
            if IS_ROOT:
                shutil.chown(path, "outbox", "outbox")
        secret = client_secret_file(workdir)
        r = {"host": "localhost", "port": str(up.port), "ca_file": up.ca_file, "tls": "starttls",
             "workers": "1", "timeout": "10s", "user": "me@example.com",
             "oauth2_token_url": srv.url("/token"), "oauth2_client_id": "outbox-test",
             "oauth2_refresh_token_file": path}
        if srv.client_secret:
            r["oauth2_client_secret_file"] = secret
        r.update(relay or {})
        d = make_daemon(extra={"relay": r, "queue": {"retry_min": "1s", "retry_max": "2s"}}, start=start)
        return d, up, srv, path

    yield make
    for s in servers:
        s.stop()


def assert_token_file(path, token):
    """It holds token, mode 0600, owned by the daemon's user (as root)."""
    with open(path) as f:
        assert f.read() == token + "\n"
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    if IS_ROOT:
        assert st.st_uid == pwd.getpwnam("outbox").pw_uid


def assert_no_secret(text, srv):
    for t in srv.issued + sorted(srv.refresh_tokens) + ["refresh-1", "the-client-secret"]:
        assert t not in text, t

@pytest.mark.slow(11)
def test_a_token_is_fetched_reused_and_renewed_before_it_expires(oauth2):
    # 130 s: usable for 10 s, then within OAUTH2_REFRESH_AHEAD_S (120 s) of its end
    d, up, srv, _ = oauth2({"expires_in": 130, "client_secret": "the-client-secret"})
    send(d, ["a@r.example"])
    send(d, ["b@r.example"])
    msgs = up.wait_for(2)
    assert [m.login for m in msgs] == ["me@example.com"] * 2
    grants = srv.grants("refresh_token")
    assert len(grants) == 1, grants             # the second message reused the token
    assert grants[0]["refresh_token"] == "refresh-1" and grants[0]["client_secret"] == "the-client-secret"
    assert any(b"auth=Bearer %s\x01" % srv.issued[0].encode() in blob for blob in up.tokens_seen)
    time.sleep(11)                              # past the idle session's close (10 s), and the token's use
    send(d, ["c@r.example"])
    up.wait_for(3)
    assert len(srv.grants("refresh_token")) == 2
    assert any(b"auth=Bearer %s\x01" % srv.issued[1].encode() in blob for blob in up.tokens_seen)
    wait_queue_empty(d)
    assert "OAuth2 access token obtained" in d.log()
    assert_no_secret(d.log(), srv)
    out = d.outbox("config")
    assert out.returncode == 0 and "oauth2_token_url = %s" % srv.url("/token") in out.stdout
    assert_no_secret(out.stdout, srv)


def test_a_refused_token_is_replaced_once(oauth2):
    d, up, srv, _ = oauth2({"skip_first": True})
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.login == "me@example.com"
    assert len(srv.grants("refresh_token")) == 2     # the cached one refused, a fresh one taken
    wait_queue_empty(d)
    assert "status=deferred" not in d.log()


def test_a_rotated_refresh_token_is_stored_0600(oauth2):
    d, up, srv, path = oauth2({"rotate": True})
    send(d, ["a@r.example"])
    up.wait_for(1)
    d.wait_log(r"rotated OAuth2 refresh token stored in")
    assert_token_file(path, "refresh-2")
    assert [n for n in os.listdir(os.path.dirname(path)) if n != "refresh"] == []   # no tmp left
    d.stop()                                           # the cache is gone: the next refresh reads the file
    d.start()
    send(d, ["b@r.example"])
    up.wait_for(2)
    assert srv.grants("refresh_token")[-1]["refresh_token"] == "refresh-2"
    assert_no_secret(d.log(), srv)


def test_the_endpoint_down_defers_and_then_the_mail_goes(oauth2):
    d, up, srv, _ = oauth2()
    srv.down = True
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> .* status=deferred \(.*temporarily_unavailable")
    assert up.messages == [] and "bounced" not in d.log()
    srv.down = False
    (m,) = up.wait_for(1, timeout=30)
    assert m.rcpt_tos == ["a@r.example"]
    wait_queue_empty(d)


def test_a_bad_refresh_token_defers_and_says_so(oauth2):
    d, up, srv, path = oauth2()
    srv.refresh_tokens = {"something-else"}
    send(d, ["a@r.example"])
    d.wait_log(r"status=deferred \(.*invalid_grant: the refresh token is not valid")
    assert up.messages == []
    assert_no_secret(d.log(), srv)


def test_device_login_end_to_end(oauth2):
    """outbox oauth2 login: prints where to go and the code, polls while
    the user has not approved, stores the refresh token 0600 (the
    daemon's when run as root), and outboxd then sends with it."""
    d, up, srv, path = oauth2({"approve_after": 2}, token=False,
                              start=False)
    d.sections["relay"]["oauth2_device_url"] = srv.url("/device")
    d.write_conf()
    r = subprocess.run([OUTBOX, "-C", d.conf, "oauth2", "login"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert srv.url("/verify") in r.stdout and "WDJB-MJHT" in r.stdout
    assert "Approved: the refresh token is in %s" % path in r.stdout
    assert srv.polls == 3                                 # pending, pending, approved
    device = [f for p, f in srv.requests if p == "/device"]
    assert device == [{"client_id": "outbox-test"}]      # no scope known for this endpoint
    assert_token_file(path, "refresh-device")
    assert_no_secret(r.stdout + r.stderr, srv)
    d.start()
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.login == "me@example.com"
    assert srv.grants("refresh_token")[-1]["refresh_token"] == "refresh-device"


def test_device_login_refused(oauth2):
    d, up, srv, path = oauth2({"approve_after": 100}, token=False, start=False)
    d.sections["relay"]["oauth2_device_url"] = srv.url("/device")
    d.write_conf()
    orig = srv.handle

    def deny(p, form):
        if form.get("grant_type", "").endswith("device_code"):
            return 400, {"error": "access_denied", "error_description": "the user said no"}
        return orig(p, form)
    srv.handle = deny
    r = subprocess.run([OUTBOX, "-C", d.conf, "oauth2", "login"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "access_denied: the user said no" in r.stderr
    assert not os.path.exists(path)


def test_oauth2_keys_are_checked(make_daemon, workdir):
    from test_config_check import check
    bad = os.path.join(workdir, "bad.conf")
    with open(bad, "w") as f:
        f.write("[relay]\nhost = smtp.office365.com\nuser = me@x.example\n"
                "oauth2_token_url = http://login.example/token\npassword_command = echo x\n")
    r = check(bad)
    err = r.stderr.decode()
    assert r.returncode != 0
    for want in ("must be an https:// URL", "oauth2_client_id is not", "oauth2_refresh_token_file is not",
                 "together with password_file or password_command"):
        assert want in err, (want, err)
