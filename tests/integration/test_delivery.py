"""Delivery through the upstream: every assertion is on what the aiosmtpd
upstream really received (envelope, bytes, TLS, login) and on the queue."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import IS_ROOT
from test_tls_versions import best_tls


def send(d, rcpts, body=b"Subject: t\n\nhello\n", sender="me@sender.example", args=()):
    r = d.sendmail(["-f", sender] + list(args) + list(rcpts), body)
    assert r.returncode == 0, r.stderr
    return r


def wait_log(d, pattern, timeout=20, count=1):
    d.wait_log(pattern, timeout, count)


def wait_queue_empty(d, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not d.queue_ids():
            return
        time.sleep(0.05)
    raise AssertionError("queue not empty: %s\n%s" % (d.queue_ids(), d.log()))


@pytest.mark.parametrize("mech", ["plain", "login"])
def test_starttls_and_auth(relay_daemon, mech):
    d, up = relay_daemon(relay={"auth": mech})
    send(d, ["a@r.example", "b@r.example"], b"Subject: starttls\n\nbody line\n")
    m = up.wait_for(1)[0]
    assert m.mail_from == "me@sender.example"
    assert m.rcpt_tos == ["a@r.example", "b@r.example"]
    assert m.tls == best_tls()           # 1.3 where the build's mbedTLS has it
    assert m.login == "user1"
    assert up.auth_attempts == [(mech.upper(), "user1", True)]
    assert m.data.endswith(b"\r\n\r\nbody line\r\n")
    assert m.data.startswith(b"Received: from localhost")
    wait_queue_empty(d)
    assert re.search(r"to=<a@r.example> relay=localhost\[127\.0\.0\.1\]:%d tls=%s delay=[\d.]+ "
                     r"tries=1 status=sent \(250 2\.0\.0 Ok: queued\)" % (up.port, re.escape(best_tls())),
                     d.log())
    assert "secret-pw" not in d.log()


def test_implicit_tls(relay_daemon):
    d, up = relay_daemon(up_kw={"tls": "implicit"})
    send(d, ["a@r.example"])
    m = up.wait_for(1)[0]
    assert m.tls == best_tls() and m.login == "user1"


@pytest.mark.parametrize("mech", ["xoauth2", "oauthbearer", "auto"])
def test_oauth_token_from_password_command(relay_daemon, workdir, mech):
    script = os.path.join(workdir, "token.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho ya29.good-token\n")
    os.chmod(script, 0o755)
    # auto: a server that takes only tokens gets the secret as one
    only_tokens = ["PLAIN", "LOGIN"] if mech == "auto" else []
    d, up = relay_daemon(up_kw={"tokens": {"ya29.good-token"}, "auth_exclude": only_tokens},
                         password=None,
                         relay={"auth": mech, "user": "me@gmail.example",
                                "password_command": script + " --for outbox"})
    send(d, ["a@r.example"])
    m = up.wait_for(1)[0]
    assert m.login == "me@gmail.example"
    assert any(b"auth=Bearer ya29.good-token" in t for t in up.tokens_seen)
    used = "oauthbearer" if mech == "auto" else mech
    assert b"AUTH %s " % used.upper().encode() in b"".join(bytes(c.raw) for c in up.sessions())
    assert "ya29" not in d.log()


def test_expired_token_is_fetched_again(relay_daemon, workdir):
    counter = os.path.join(workdir, "n")
    script = os.path.join(workdir, "token.sh")
    with open(script, "w") as f:  # first call prints a stale token, later ones a good one
        f.write("#!/bin/sh\nif [ -e %s ]; then echo fresh; else touch %s; echo stale; fi\n" % (counter, counter))
    os.chmod(script, 0o755)
    os.chmod(workdir, 0o777)
    d, up = relay_daemon(up_kw={"tokens": {"fresh"}}, password=None,
                         relay={"auth": "xoauth2", "user": "me@x.example", "password_command": script})
    send(d, ["a@r.example"])
    m = up.wait_for(1)[0]
    assert m.login == "me@x.example"
    assert [b"stale" in t for t in up.tokens_seen] == [True, False]


def test_wrong_password_defers_not_bounces(relay_daemon):
    d, up = relay_daemon()
    up.users["user1"] = "another"
    send(d, ["a@r.example"])
    wait_log(d, r"status=deferred \(535 5\.7\.8 Authentication credentials invalid; "
                r"what to do: check user and password_file\) next=\+1s")
    assert "bounced" not in d.log()
    assert len(d.queue_ids()) == 1
    up.users["user1"] = "secret-pw"       # the provider accepts again: it goes
    m = up.wait_for(1, timeout=30)[0]
    assert m.rcpt_tos == ["a@r.example"]
    wait_queue_empty(d)


@pytest.mark.parametrize("pipelining", [True, False])
def test_one_recipient_refused_one_accepted(relay_daemon, pipelining):
    d, up = relay_daemon(up_kw={"pipelining": pipelining})
    up.reject_rcpt = {"bad@r.example"}
    send(d, ["good@r.example", "bad@r.example"])
    m = up.wait_for_originals(1)[0]
    assert m.rcpt_tos == ["good@r.example"]
    reads = up.sessions()[0].reads     # without PIPELINING: one command per write
    assert any(b"MAIL FROM" in r and b"RCPT TO" in r for r in reads) == pipelining
    wait_log(d, r"to=<bad@r.example> .* status=bounced \(550 5\.1\.1 <bad@r.example>: Recipient address rejected\)")
    wait_log(d, r"to=<good@r.example> .* status=sent")
    (report,) = up.wait_for_reports(1)     # the sender learns of bad@ only
    assert report.rcpt_tos == ["me@sender.example"]
    assert b"Final-Recipient: rfc822; bad@r.example\r\nAction: failed\r\nStatus: 5.1.1" in report.data
    assert b"good@r.example" not in report.data.split(b"text/rfc822-headers")[0]
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.originals()) == 1      # the accepted one is never sent again
    assert len(up.reports()) == 1


def test_tempfail_twice_then_success_with_backoff(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"retry_min": "1s", "retry_max": "10s"}})
    up.tempfail_first = 2
    send(d, ["a@r.example"])
    m = up.wait_for(1, timeout=30)[0]
    assert m.rcpt_tos == ["a@r.example"]
    t1, t2 = up.tempfails_sent
    first, second = t2 - t1, time.time() - t2
    # retry 1 waits retry_min (x0.9..1.1, at least retry_min), retry 2 twice that
    assert 0.95 <= first <= 1.8, first
    assert 1.75 <= second <= 2.9, second
    assert len(re.findall(r"status=deferred \(451 4\.7\.1 Try again later\)", d.log())) == 2
    wait_log(d, r"tries=3 status=sent")


def test_no_starttls_offered_nothing_sent_in_clear(relay_daemon):
    d, up = relay_daemon(up_kw={"tls": "none", "offer_auth_in_clear": True},
                         relay={"tls": "starttls"})
    send(d, ["a@r.example"])
    wait_log(d, r"status=deferred \(the server does not offer STARTTLS")
    raw = b"".join(bytes(c.raw) for c in up.sessions())
    assert b"EHLO" in raw
    assert b"MAIL FROM" not in raw and b"AUTH" not in raw and b"secret-pw" not in raw
    assert up.messages == [] and len(d.queue_ids()) == 1


@pytest.mark.parametrize("cert,reason", [
    ("wrong-host", "does not match with the expected CN"),
    ("expired", "expired"),
    ("untrusted", "not correctly signed"),
])
def test_bad_certificates_defer(relay_daemon, cert, reason):
    d, up = relay_daemon(up_kw={"cert": cert})
    send(d, ["a@r.example"])
    wait_log(d, r"status=deferred \(TLS certificate verification failed for localhost: .*%s" % reason)
    raw = b"".join(bytes(c.raw) for c in up.sessions())
    assert b"MAIL FROM" not in raw and b"AUTH" not in raw
    assert up.messages == [] and len(d.queue_ids()) == 1
    assert "bounced" not in d.log()


@pytest.mark.parametrize("cert,ok", [("good", True), ("wrong-host", False)])
def test_ip_address_host_is_matched_against_ip_sans(relay_daemon, cert, ok):
    """[relay] host = 127.0.0.1: the certificate must name that address
    (good.pem has IP:127.0.0.1; wrong-host.pem only DNS:wrong.example)."""
    d, up = relay_daemon(up_kw={"cert": cert}, relay={"host": "127.0.0.1"})
    send(d, ["a@r.example"])
    if ok:
        assert up.wait_for(1)[0].tls == best_tls()
    else:
        wait_log(d, r"status=deferred \(TLS certificate verification failed for 127\.0\.0\.1: "
                    r"The certificate Common Name \(CN\) does not match")
        raw = b"".join(bytes(c.raw) for c in up.sessions())
        assert b"MAIL FROM" not in raw and b"AUTH" not in raw and up.messages == []


def test_verify_no_is_a_choice(relay_daemon):
    d, up = relay_daemon(up_kw={"cert": "untrusted"}, relay={"verify": "no"})
    send(d, ["a@r.example"])
    assert up.wait_for(1)[0].tls == best_tls()


@pytest.mark.parametrize("chunking", [False, True])
def test_disconnect_mid_data_delivered_later_once(relay_daemon, chunking):
    d, up = relay_daemon(up_kw={"chunking": chunking})
    up.disconnect_data = 1
    send(d, ["a@r.example"], b"Subject: once\n\nonly once\n")
    m = up.wait_for(1, timeout=30)[0]
    assert m.data.endswith(b"only once\r\n")
    wait_log(d, r"status=deferred \(lost connection with the server\)")
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_twenty_messages_use_at_most_workers_connections(relay_daemon, pipelining):
    d, up = relay_daemon(up_kw={"pipelining": pipelining}, relay={"workers": "2"})
    for i in range(20):
        send(d, ["r%d@r.example" % i], b"Subject: %d\n\nn\n" % i)
    msgs = up.wait_for(20)
    assert sorted(m.rcpt_tos[0] for m in msgs) == sorted("r%d@r.example" % i for i in range(20))
    assert 1 <= len(up.sessions()) <= 2
    wait_queue_empty(d)


def test_content_arrives_as_meant(relay_daemon):
    d, up = relay_daemon()
    c = d.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<s@s.example> SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    body = (b"Subject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\n"
            b"..starts with a dot\r\n"          # stuffed by the client, as SMTP wants
            b"...two dots\r\n"
            b"caf\xc3\xa9 8-bit\r\n"
            b"bare lf\nline\rbare cr\r\n"
            b"smuggle\n.\nMAIL FROM:<evil@x>\r\n"
            b"last")
    code, _ = c.cmd(body + b"\r\n.")
    assert code == 250
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["j\u00f6rg@r.example"]
    assert "SMTPUTF8" in m.mail_options and "BODY=8BITMIME" in m.mail_options
    sent = m.data.split(b"\r\n", 3)[3]  # past the Received: field (3 lines)
    assert sent == (b"Subject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\n"
                    b".starts with a dot\r\n..two dots\r\ncaf\xc3\xa9 8-bit\r\n"
                    b"bare lf\r\nline\r\nbare cr\r\n"
                    b"smuggle\r\n.\r\nMAIL FROM:<evil@x>\r\nlast\r\n")
    raw = b"".join(bytes(x.raw) for x in up.sessions())
    assert b"\r\n..starts with a dot\r\n...two dots\r\n" in raw
    assert b"\r\nsmuggle\r\n..\r\nMAIL FROM:<evil@x>" in raw
    assert raw.count(b"MAIL FROM:") == 2    # ours, and the smuggled text as content only


def test_long_lines_broken_within_998(relay_daemon):
    d, up = relay_daemon()
    long_body = b"x" * 2500
    long_subject = b"Subject: " + b"s" * 1500
    utf8_line = "\u00e9".encode() * 600     # 1200 octets of 2-octet characters
    send(d, ["a@r.example"], long_subject + b"\n\n" + long_body + b"\n" + utf8_line + b"\nend\n")
    m = up.wait_for(1)[0]
    lines = m.data.split(b"\r\n")
    assert max(len(l) for l in lines) <= 998
    assert b"\n" not in m.data.replace(b"\r\n", b"")
    head, body = m.data.split(b"\r\n\r\n", 1)
    # header: folded with CRLF SPACE, so unfolding gives the field back
    assert long_subject in head.replace(b"\r\n ", b"")
    # body: CRLF inserted; joining the pieces gives the text back, and
    # no UTF-8 character was cut in two
    assert body.replace(b"\r\n", b"") == long_body + utf8_line + b"end"
    for l in body.split(b"\r\n"):
        l.decode("utf-8")
    wait_log(d, r"lines over 998 octets were broken")


@pytest.mark.parametrize("chunking", [False, True])
def test_raw_8bit_run_broken_at_998_regardless(relay_daemon, chunking):
    """Octets 0x80-0xBF are UTF-8 continuation bytes: no character boundary
    in 3000 of them, yet no line on the wire may pass 998 octets."""
    d, up = relay_daemon(up_kw={"chunking": chunking})
    raw = bytes(0x80 + i % 64 for i in range(3000))
    r = d.sendmail(["-f", "me@sender.example", "a@r.example"],
                   b"Subject: raw\nX-Raw: " + raw + b"\n\n" + raw + b"\n")
    assert r.returncode == 0, r.stderr
    m = up.wait_for(1)[0]
    assert max(len(l) for l in m.data.split(b"\r\n")) <= 998
    head, body = m.data.split(b"\r\n\r\n", 1)
    assert body.replace(b"\r\n", b"") == raw            # only CRLFs were inserted
    assert b"X-Raw: " + raw in head.replace(b"\r\n ", b"")  # folded, not cut
    assert bool(up.bdat_commands) == chunking


@pytest.mark.parametrize("chunking", [False, True])
def test_kill9_during_batches_then_restart(relay_daemon, chunking):
    d, up = relay_daemon(up_kw={"chunking": chunking}, relay={"workers": "2"})
    up.data_delay = 0.1
    n = 40
    for i in range(n):
        send(d, ["r%d@r.example" % i], b"Subject: k%d\n\nk\n" % i)
    up.wait_for(5, timeout=30)
    d.kill9()
    d.start()
    deadline = time.time() + 60
    while time.time() < deadline and len({m.rcpt_tos[0] for m in up.messages}) < n:
        time.sleep(0.1)
    got = [m.rcpt_tos[0] for m in up.messages]
    assert sorted(set(got)) == sorted("r%d@r.example" % i for i in range(n))
    dups = len(got) - len(set(got))
    # the upstream finishes what it already read of a dead client's
    # pipeline: with DATA one message per session, with BDAT a batch (8)
    # and the previous batch's last, not yet recorded
    allowed = 2 * (8 + 1) if chunking else 2 * 2
    assert dups <= allowed, "more duplicates (%d) than messages in flight" % dups
    print("kill -9: %d duplicates" % dups)
    wait_queue_empty(d)


@pytest.mark.parametrize("chunking", [False, True])
def test_sigterm_finishes_message_in_hand_and_keeps_queue(relay_daemon, chunking):
    """What is in hand (a pipelined run with DATA, a batch of at most 8
    with BDAT) is finished; the rest stays queued for the restart."""
    d, up = relay_daemon(up_kw={"chunking": chunking}, relay={"workers": "1"})
    up.data_delay = 0.5 if chunking else 1.0
    n = 12 if chunking else 4
    for i in range(n):
        send(d, ["r%d@r.example" % i], b"Subject: s%d\n\ns\n" % i)
    deadline = time.time() + 10
    while up.data_ends == 0 and time.time() < deadline:   # first message being answered
        time.sleep(0.02)
    t0 = time.time()
    assert d.stop() == 0
    assert time.time() - t0 < 11
    got = {m.rcpt_tos[0] for m in up.messages}
    assert len(got) >= 1                             # what was in hand was finished
    left = len(d.queue_ids())
    assert left == n - len(got) and left >= 1        # the rest is still queued
    up.data_delay = 0
    d.start()
    up.wait_for(n, timeout=30)
    assert {m.rcpt_tos[0] for m in up.messages} == {"r%d@r.example" % i for i in range(n)}


def test_sighup_applies_new_relay_to_new_sessions(relay_daemon, make_upstream):
    d, up = relay_daemon()
    send(d, ["a@r.example"])
    up.wait_for(1)
    up2 = make_upstream(users={"user1": "secret-pw"})
    d.sections["relay"]["port"] = str(up2.port)
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    wait_log(d, "configuration reloaded")
    send(d, ["b@r.example"])
    m = up2.wait_for(1)[0]
    assert m.rcpt_tos == ["b@r.example"]
    assert len(up.messages) == 1


def test_unreachable_upstream_defers(make_daemon):
    d = make_daemon(extra={"relay": {"host": "localhost", "port": "1", "tls": "none"},
                           "queue": {"retry_min": "1s", "retry_max": "2s"}})
    r = d.sendmail(["a@r.example"], b"Subject: x\n\ny\n")
    assert r.returncode == 0
    wait_log(d, r"status=deferred \(cannot connect to localhost port 1 \(.*Connection refused")
    assert "bounced" not in d.log()


def test_unknown_host_defers(make_daemon):
    d = make_daemon(extra={"relay": {"host": "nonexistent.invalid", "tls": "none"}})
    d.sendmail(["a@r.example"], b"Subject: x\n\ny\n")
    wait_log(d, r"status=deferred \(cannot resolve nonexistent\.invalid")


def test_lifetime_expiry_bounces(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"lifetime": "2s", "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_first = 100
    send(d, ["a@r.example"])
    wait_log(d, r"status=bounced \(4\.4\.7 message expired after 2s in the queue: 451", timeout=20)
    wait_queue_empty(d)


def test_every_address_is_tried_in_turn(relay_daemon, workdir):
    """dual.test resolves to ::1 first, then 127.0.0.1, where the upstream
    listens: the refused address is passed over, not given up on."""
    if not IS_ROOT:
        pytest.skip("needs root for a private /etc/hosts")
    hosts = os.path.join(workdir, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 localhost\n::1 dual.test\n127.0.0.1 dual.test\n")
    probe = subprocess.run(["unshare", "--mount", "sh", "-c",
                            "mount --bind %s /etc/hosts && getent ahosts dual.test" % hosts],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("no mount namespace here: %s" % probe.stderr.strip())
    assert probe.stdout.split()[0] == "::1"
    d, up = relay_daemon(up_kw={"tls": "none"}, password=None,
                         relay={"host": "dual.test", "tls": "none"}, start=False)
    d.prefix = ["unshare", "--mount", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', hosts]
    d.start()
    send(d, ["a@r.example"])
    assert up.wait_for(1)[0].rcpt_tos == ["a@r.example"]
    wait_log(d, r"relay=dual\.test\[127\.0\.0\.1\]:%d tls=none .* status=sent" % up.port)


class RawServer:
    """A hand-written TCP server on 127.0.0.1 for upstream misbehaviour that
    aiosmtpd cannot produce; session(conn) is called for each connection."""

    def start(self):
        import socket
        import threading
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(5)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()
        return self

    def serve(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            self.conns.append(conn)
            try:
                self.session(conn)
            except Exception:
                pass

    def close(self):
        self.lsock.close()
        for c in self.conns:
            c.close()

    @staticmethod
    def read_data(f):
        """The message after a 354, up to the lone ".", dot-unstuffed."""
        body = b""
        for line in f:
            if line == b".\r\n":
                return body
            body += line[1:] if line.startswith(b".") else line
        return None


class InjectingServer(RawServer):
    """A hand-written STARTTLS server that pipelines a forged reply behind
    its "220 ready to start TLS" (the STARTTLS injection attack) and
    records the SNI the client sent."""

    def __init__(self, certs):
        import ssl
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(certs, "good.pem"), os.path.join(certs, "good.key"))
        self.sni = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.dialogue = []      # commands seen after TLS
        self.messages = []
        self.start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 inject.test ESMTP\r\n")
        f.readline()                                           # EHLO
        conn.sendall(b"250-inject.test\r\n250 STARTTLS\r\n")
        f.readline()                                           # STARTTLS
        conn.sendall(b"220 go ahead\r\n250-injected\r\n250 SIZE 10\r\n")
        tls = self.ctx.wrap_socket(conn, server_side=True)
        t = tls.makefile("rb")
        while True:
            line = t.readline()
            if not line:
                return
            self.dialogue.append(line.split(b" ")[0].strip().upper())
            cmd = self.dialogue[-1]
            if cmd == b"EHLO":
                tls.sendall(b"250-inject.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n")
            elif cmd == b"AUTH":
                tls.sendall(b"235 2.7.0 ok\r\n")
            elif cmd == b"DATA":
                tls.sendall(b"354 go\r\n")
                self.messages.append(self.read_data(t))
                tls.sendall(b"250 2.0.0 ok\r\n")
            elif cmd == b"QUIT":
                tls.sendall(b"221 bye\r\n")
                return
            else:
                tls.sendall(b"250 ok\r\n")


def test_starttls_injection_discarded_and_sni_sent(make_daemon, certs, workdir):
    srv = InjectingServer(certs)
    try:
        pw = os.path.join(workdir, "pw")
        with open(pw, "w") as f:
            f.write("x\n")
        os.chmod(pw, 0o640)
        if IS_ROOT:
            import grp
            os.chown(pw, 0, grp.getgrnam("outbox").gr_gid)
        d = make_daemon(extra={"relay": {"host": "localhost", "port": str(srv.port), "tls": "starttls",
                                         "ca_file": os.path.join(certs, "ca.pem"), "user": "u",
                                         "password_file": pw}})
        send(d, ["a@r.example"], b"Subject: inj\n\nbody\n")
        wait_log(d, r"status=sent")
        # the forged "250-injected / 250 SIZE 10" was not taken as the EHLO
        # reply: the client saw AUTH offered, authenticated, and sent a
        # message far larger than SIZE 10
        assert srv.dialogue[:3] == [b"EHLO", b"AUTH", b"MAIL"]
        assert srv.messages and srv.messages[0].endswith(b"body\r\n")
        assert srv.sni == ["localhost"]
    finally:
        srv.close()


class HostileServer(RawServer):
    """Speaks just enough SMTP to be dangerous: answers with `behaviour`
    (garbage, an endless reply line, silence) at the greeting, or offers
    CHUNKING, takes MAIL and RCPT, and at BDAT falls silent, answers
    garbage or hangs up (bdat-*)."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.start()

    def session(self, conn):
        if self.behaviour == "garbage":
            conn.sendall(b"HELLO THERE\r\n")
        elif self.behaviour == "endless":
            conn.sendall(b"220-" + b"x" * 100000)
        elif self.behaviour.startswith("bdat-"):
            self.chunking_session(conn)
        # "silent" never says anything

    def chunking_session(self, conn):
        conn.sendall(b"220 hostile ESMTP\r\n")
        f = conn.makefile("rb")
        for line in f:
            if line.upper().startswith(b"EHLO"):
                conn.sendall(b"250-hostile\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
            elif line.upper().startswith((b"MAIL", b"RCPT")):
                conn.sendall(b"250 ok\r\n")
            elif line.upper().startswith(b"BDAT"):
                if self.behaviour == "bdat-garbage":
                    conn.sendall(b"OK THANKS\r\n")
                elif self.behaviour == "bdat-hangup":
                    conn.close()
                    return
                time.sleep(5)   # bdat-silent (and after garbage): say nothing more
                return


@pytest.mark.parametrize("behaviour,reason", [
    ("garbage", r"protocol error: malformed reply line"),
    ("endless", r"protocol error: reply line too long"),
    ("silent", r"timeout waiting for the server \(2 s\)"),
    ("bdat-silent", r"timeout waiting for the server \(2 s\)"),
    ("bdat-garbage", r"protocol error: malformed reply line"),
    ("bdat-hangup", r"lost connection with the server"),
])
def test_hostile_upstream_defers_and_costs_nothing_else(make_daemon, behaviour, reason):
    srv = HostileServer(behaviour)
    try:
        d = make_daemon(extra={"relay": {"host": "127.0.0.1", "port": str(srv.port), "tls": "none",
                                         "timeout": "2s"}})
        send(d, ["a@r.example"])
        wait_log(d, r"status=deferred \(%s" % reason)
        assert len(d.queue_ids()) == 1 and "bounced" not in d.log()
        # the daemon still takes mail meanwhile
        with d.smtp() as s:
            s.ehlo("x")
            assert s.sendmail("b@s.example", ["c@r.example"], b"Subject: y\r\n\r\nz\r\n") == {}
        assert len(d.queue_ids()) == 2
    finally:
        srv.close()


def test_session_dropped_by_upstream_while_idle_is_replaced(relay_daemon):
    """The upstream hangs up an idle session; the worker notices (RSET
    fails) and opens a new one, deferring nothing."""
    d, up = relay_daemon(up_kw={"idle_timeout": 1}, relay={"workers": "1"})
    send(d, ["a@r.example"])
    up.wait_for(1)
    time.sleep(3)                      # upstream times the session out after 1 s
    for i in range(3):
        send(d, ["b%d@r.example" % i])
    msgs = up.wait_for(4)
    assert sorted(m.rcpt_tos[0] for m in msgs[1:]) == ["b0@r.example", "b1@r.example", "b2@r.example"]
    assert "deferred" not in d.log()
    assert len(up.sessions()) == 2
