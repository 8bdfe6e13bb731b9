"""outbox probe: connects as outboxd would and shows the dialogue, TLS,
the certificate and the AUTH result; exit 0 only when outboxd could relay.
Checked against the aiosmtpd upstream, including what it saw."""

import os
import subprocess

import pytest

from conftest import IS_ROOT, OUTBOX, _outbox_gid
from test_tls_versions import best_tls


@pytest.fixture
def probe(make_upstream, workdir):
    def run(up_kw=None, relay=None, password="secret-pw"):
        up = make_upstream(**dict({"users": {"user1": "secret-pw"}}, **(up_kw or {})))
        pw = os.path.join(workdir, "probe-password")
        with open(pw, "w") as f:
            f.write(password + "\n")
        os.chmod(pw, 0o640)             # as outboxd reads it: probe as root reads it as outbox
        if IS_ROOT:
            os.chown(pw, 0, _outbox_gid())
        r = {"host": "localhost", "port": str(up.port), "ca_file": up.ca_file, "tls": "starttls",
             "user": "user1", "password_file": pw, "timeout": "5s"}
        r.update(relay or {})
        conf = os.path.join(workdir, "probe.conf")
        with open(conf, "w") as f:
            f.write("[relay]\n" + "".join("%s = %s\n" % kv for kv in r.items()))
        p = subprocess.run([OUTBOX, "-C", conf, "probe"], capture_output=True, text=True, timeout=30)
        raw = b"".join(bytes(c.raw) for c in up.sessions())
        assert b"MAIL FROM" not in raw and up.messages == []      # a probe sends no mail
        assert password not in p.stdout + p.stderr
        return p, up, raw
    return run


def test_probe_shows_dialogue_tls_certificate_and_auth(probe):
    p, up, raw = probe(up_kw={"chunking": True})
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    for line in ("S: 220 upstream.test", "C: STARTTLS", "S: 250-CHUNKING", "tls: %s " % best_tls(),
                 "subject: CN=localhost", "issuer: CN=outbox test CA", "verification: ok",
                 "C: AUTH PLAIN", "S: 235 2.7.0", "auth: PLAIN as user1: ok", "result: ok"):
        assert line in out, line
    assert out.index("C: STARTTLS") < out.index("S: 250-AUTH")   # AUTH offered only after TLS
    assert up.auth_attempts == [("PLAIN", "user1", True)]


def test_probe_wrong_password(probe):
    p, up, raw = probe(password="not-the-password")
    assert p.returncode == 1
    assert "result: failed at AUTH: 535" in p.stdout


def test_probe_shows_why_a_certificate_fails_and_sends_no_auth(probe):
    p, up, raw = probe(up_kw={"cert": "expired"})
    assert p.returncode == 1
    assert "subject: CN=localhost" in p.stdout
    assert "verification failed: The certificate validity has expired" in p.stdout
    assert "result: failed at TLS: TLS certificate verification failed" in p.stdout
    assert b"AUTH" not in raw and up.auth_attempts == []


def test_probe_no_starttls_offered(probe):
    p, up, raw = probe(up_kw={"tls": "none", "offer_auth_in_clear": True})
    assert p.returncode == 1
    assert "result: failed at STARTTLS: the server does not offer STARTTLS" in p.stdout
    assert b"AUTH" not in raw


def test_probe_tries_each_relay_or_the_one_named(make_upstream, workdir):
    good = make_upstream()
    conf = os.path.join(workdir, "relays.conf")
    with open(conf, "w") as f:
        f.write("[relay]\nhost = localhost\nport = 1\ntimeout = 5s\n"
                "[relay.backup]\nhost = localhost\nport = %d\nca_file = %s\ntimeout = 5s\n"
                % (good.port, good.ca_file))
    p = subprocess.run([OUTBOX, "-C", conf, "probe"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1                      # [relay] (port 1) fails
    results = [l for l in p.stdout.splitlines() if l.startswith("result: ")]
    assert len(results) == 2 and results[0].startswith("result: failed at connect")
    assert results[1] == "result: ok: outboxd can relay through backup[127.0.0.1]:%d" % good.port
    assert "relay: [relay] localhost port 1" in p.stdout
    assert "relay: [relay.backup] localhost port %d" % good.port in p.stdout
    p = subprocess.run([OUTBOX, "-C", conf, "probe", "backup"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.count("result: ") == 1, p.stdout
    p = subprocess.run([OUTBOX, "-C", conf, "probe", "nosuch"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 64 and "no relay nosuch" in p.stderr
