"""TLS versions and servers: what this build negotiates with a server that
speaks only TLS 1.2, one that speaks 1.2 and 1.3 and one that speaks only
1.3, with an RSA or an ECDSA certificate, asserted on what the upstream
received.  A TLS 1.2 server with an RSA certificate is the one mbedTLS
3.6.6 cannot take unaided (common/tls_compat.h): the workaround, its
memory and its verification are checked here.

What to expect comes from the build itself, not from the OS: `outbox
probe` names the TLS library and the versions it can negotiate
(build_tls() below; test_delivery.py and test_probe.py use it too)."""

import functools
import os
import re
import subprocess
import time

import pytest

from conftest import OUTBOX

WORKAROUND_NOTE = "trying TLS 1.2 without RSA-PSS signatures"


@functools.lru_cache(maxsize=None)
def build_tls():
    """What the build under test says of its TLS library: a dict with
    library ("Mbed TLS 3.6.6"), tls13 (it can negotiate TLS 1.3) and
    workaround (it has mbedTLS 3.6.6's TLS 1.2 fault to work around)."""
    conf = "/tmp/outbox-tls-build-%d.conf" % os.getpid()
    with open(conf, "w") as f:
        f.write("[relay]\nhost = localhost\nport = 1\ntimeout = 5s\n")
    p = subprocess.run([OUTBOX, "-C", conf, "probe"], capture_output=True, text=True, timeout=30)
    os.unlink(conf)
    m = re.match(r"tls library: (.+): TLS 1\.2 (only|and 1\.3)( \(with the TLS 1\.2 workaround for it\))?\n",
                 p.stdout)
    assert m, p.stdout + p.stderr
    return {"library": m.group(1), "tls13": m.group(2) == "and 1.3", "workaround": bool(m.group(3))}


def best_tls():
    """The version this build negotiates with a server that offers 1.2 and 1.3."""
    return "TLSv1.3" if build_tls()["tls13"] else "TLSv1.2"


def send(d, rcpt, body=b"Subject: tls\n\nover TLS\n"):
    r = d.sendmail(["-f", "me@sender.example", rcpt], body)
    assert r.returncode == 0, r.stderr


def test_probe_names_the_library_and_what_it_negotiates():
    b = build_tls()
    m = re.fullmatch(r"[Mm]bed TLS (\d+)\.(\d+)\.(\d+)", b["library"])
    assert m, b
    version = tuple(int(x) for x in m.groups())
    if version < (3, 0, 0):
        assert not b["tls13"]            # mbedTLS 2.28 (Debian 12) has TLS 1.2 only
    assert b["workaround"] == ((3, 6, 6) <= version < (3, 6, 7))


@pytest.mark.parametrize("cert", ["good", "ecdsa"])
@pytest.mark.parametrize("version", ["1.2", None])
def test_delivery_over_each_version_and_key(relay_daemon, cert, version):
    """A server that speaks only TLS 1.2, or 1.2 and 1.3, with an RSA
    (good) or ECDSA certificate: the message arrives, over the version
    the build can get, and the log says so.  Only TLS 1.2 with RSA costs
    the 3.6.6 workaround's second handshake."""
    d, up = relay_daemon(up_kw={"cert": cert, "tls_version": version}, relay={"workers": "1"})
    send(d, "a@r.example")
    m = up.wait_for(1, timeout=30)[0]
    want = "TLSv1.2" if version == "1.2" else best_tls()
    assert (m.tls, m.login, m.rcpt_tos) == (want, "user1", ["a@r.example"])
    assert m.data.endswith(b"\r\n\r\nover TLS\r\n")
    d.wait_log(r"to=<a@r\.example> relay=localhost\[127\.0\.0\.1\]:%d tls=%s .*status=sent"
               % (up.port, re.escape(want)))
    # each session's version and cipher, as the upstream negotiated them
    d.wait_log(r"session open to localhost\[127\.0\.0\.1\]:%d tls=%s cipher=TLS\S+ auth=PLAIN"
               % (up.port, re.escape(want)))
    retried = build_tls()["workaround"] and version == "1.2" and cert == "good"
    assert (WORKAROUND_NOTE in d.log()) == retried
    assert len(up.sessions()) == (2 if retried else 1)
    assert "deferred" not in d.log()


def test_tls13_build_gets_tls13(relay_daemon):
    """A server that speaks only TLS 1.3, with an RSA certificate (so
    RSA-PSS signatures, which TLS 1.3 requires): a build with TLS 1.3
    delivers over it."""
    if not build_tls()["tls13"]:
        pytest.skip("%s has no TLS 1.3 (Debian 12's mbedTLS 2.28: TLS 1.2 only)" % build_tls()["library"])
    d, up = relay_daemon(up_kw={"tls_version": "1.3"})
    send(d, "a@r.example")
    assert up.wait_for(1, timeout=30)[0].tls == "TLSv1.3"
    assert WORKAROUND_NOTE not in d.log()


def test_tls12_rsa_server_remembered_and_verified_as_before(relay_daemon, make_upstream):
    """TLS 1.2 with an RSA certificate: the first session (with the 3.6.6
    workaround: after one refused handshake) delivers; a later session
    goes straight to TLS 1.2; and when the server then shows a
    certificate for another host, that session fails verification as
    any would: nothing is sent, the message waits."""
    d, up = relay_daemon(up_kw={"tls_version": "1.2", "idle_timeout": 1}, relay={"workers": "1"})
    send(d, "a@r.example")
    up.wait_for(1, timeout=30)
    time.sleep(3)                               # the upstream ends the idle session after 1 s
    send(d, "b@r.example")
    msgs = up.wait_for(2, timeout=30)
    assert [(m.rcpt_tos, m.tls) for m in msgs] == [(["a@r.example"], "TLSv1.2"), (["b@r.example"], "TLSv1.2")]
    workaround = build_tls()["workaround"]
    assert d.log().count(WORKAROUND_NOTE) == (1 if workaround else 0)
    assert len(up.sessions()) == (3 if workaround else 2)   # the second session: no refused handshake

    up.stop()                                   # the same port, now with a certificate for another host
    bad = make_upstream(port=up.port, tls_version="1.2", cert="wrong-host", users={"user1": "secret-pw"})
    send(d, "c@r.example")
    d.wait_log(r"status=deferred \(TLS certificate verification failed for localhost: "
               r".*does not match with the expected CN", 30)
    raw = b"".join(bytes(c.raw) for c in bad.sessions())
    assert b"AUTH" not in raw and b"MAIL FROM" not in raw and bad.messages == []
    assert d.log().count(WORKAROUND_NOTE) == (1 if workaround else 0)


def test_probe_of_a_tls12_rsa_server(make_upstream, workdir):
    """`outbox probe` shows the version it got and, with the workaround,
    that it was needed."""
    up = make_upstream(tls_version="1.2")
    conf = os.path.join(workdir, "probe12.conf")
    with open(conf, "w") as f:
        f.write("[relay]\nhost = localhost\nport = %d\nca_file = %s\ntimeout = 5s\n" % (up.port, up.ca_file))
    p = subprocess.run([OUTBOX, "-C", conf, "probe"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    tls = [l for l in p.stdout.splitlines() if l.startswith("tls: ")]
    assert len(tls) == 1 and tls[0].startswith("tls: TLSv1.2 TLS-ECDHE-RSA-"), p.stdout
    assert tls[0].endswith("the mbedTLS 3.6.6 workaround, outboxd(8))") == build_tls()["workaround"]
    assert "verification: ok" in p.stdout
