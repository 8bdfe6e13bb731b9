"""A relay's trouble is the relay's, told once (issue 21, points 3 and 4;
SPEC "OAuth2" and "Providers"):

- a refresh token the endpoint refuses (invalid_grant) puts the relay in
  state "login needed": one token request, its mail deferred and never
  bounced, no more requests while the file is unchanged, `outbox status`
  and the metrics say so with the command to run, the postmaster gets one
  notice however many messages wait, and a new token file lets the mail
  go without a restart;
- a relay refusing AUTH sees at most one login in flight and at most two
  in the first minute however many messages and workers wait, `outbox
  flush` makes exactly one more at once, and status names the reply and
  what to do about it (admins) or only the state (anyone else).

Asserted on what the token endpoint and the upstream stand-ins received."""

import asyncio
import json
import os
import shutil
import threading
import time

import pytest
from aiosmtpd.smtp import MISSING

from conftest import IS_ROOT, _outbox_gid
from oauth2_server import OAuth2Server
from test_control import NOBODY, parse_metrics
from test_delivery import send, wait_queue_empty


@pytest.fixture
def dead_token(make_daemon, make_upstream, workdir, certs):
    """(daemon, upstream, token server, refresh token file) with a refresh
    token file the server refuses (invalid_grant): it accepts only
    "refresh-new".  retry_min 1 s, retry_max 1 h: only the file's change
    may bring a request."""
    servers = []

    def make():
        up = make_upstream(users={})
        srv = OAuth2Server(certs, up, refresh_token="refresh-new").start()
        servers.append(srv)
        tokens = os.path.join(workdir, "tokens")
        os.makedirs(tokens)
        if IS_ROOT:
            shutil.chown(tokens, "outbox", "outbox")
        path = os.path.join(tokens, "refresh")
        write_token(path, "refresh-revoked")
        r = {"host": "localhost", "port": str(up.port), "ca_file": up.ca_file, "tls": "starttls",
             "workers": "2", "timeout": "10s", "user": "me@example.com",
             "oauth2_token_url": srv.url("/token"), "oauth2_client_id": "outbox-test",
             "oauth2_refresh_token_file": path}
        d = make_daemon(extra={"relay": r, "queue": {"retry_min": "1s", "retry_max": "1h"},
                               "address": {"domain": "client.example"}})
        return d, up, srv, path

    yield make
    for s in servers:
        s.stop()


def write_token(path, token):
    """Replace the file as `outbox oauth2 login` does: tmp, rename."""
    tmp = path + ".tmp.test"
    with open(tmp, "w") as f:
        f.write(token + "\n")
    os.chmod(tmp, 0o600)
    if IS_ROOT:
        shutil.chown(tmp, "outbox", "outbox")
    os.rename(tmp, path)


def metrics(d):
    r = d.outbox("metrics")
    assert r.returncode == 0, r.stderr
    return parse_metrics(r.stdout)[0]


def relay_state(m, relay):
    """The state whose outbox_relay_state line is 1 for relay."""
    on = [dict(k[1])["state"] for k, v in m.items()
          if k[0] == "outbox_relay_state" and dict(k[1])["relay"] == relay and v == 1]
    assert len(on) == 1, m
    return on[0]

@pytest.mark.slow(20)
def test_a_refused_refresh_token_needs_one_login_and_one_notice(dead_token):
    d, up, srv, path = dead_token()
    for i in range(20):
        send(d, ["r%d@r.example" % i])
    d.wait_log(r"relay localhost: login needed \(run `outbox oauth2 login default`\)")
    time.sleep(20)                    # some twenty backoffs of retry_min 1 s, had the endpoint been asked
    assert len(srv.grants("refresh_token")) == 1, srv.requests
    assert up.messages == []
    log = d.log()
    assert "status=bounced" not in log and "status=sent" not in log
    d.wait_log(r"relay localhost: the postmaster's notice queued as \w+ to <root@client\.example>")
    assert len(d.queue_ids()) == 21   # the 20, and the postmaster's notice waiting with them
    assert log.count("its mail waits (deferred, never bounced)") == 1

    out = d.outbox("status")
    assert out.returncode == 0, out.stderr
    assert "relay localhost: login needed since" in out.stdout, out.stdout
    assert "run `outbox oauth2 login default`" in out.stdout
    assert "invalid_grant" in out.stdout          # what the endpoint said: admins only
    assert relay_state(metrics(d), "localhost") == "login_needed"
    (rel,) = json.loads(d.outbox("status", "--json").stdout)["relays"]
    assert rel["relay"] == "localhost" and rel["state"] == "login_needed", rel
    assert rel["command"] == "outbox oauth2 login default" and "invalid_grant" in rel["reply"], rel

    write_token(path, "refresh-new")  # the login done: outboxd notices the file at once,
    msgs = up.wait_for(21, timeout=8)  # not at the relay's next backoff (16 s or more by now)
    wait_queue_empty(d)
    assert len(srv.grants("refresh_token")) == 2
    assert srv.grants("refresh_token")[1]["refresh_token"] == "refresh-new"
    originals = sorted(r for m in msgs if not up.is_report(m) for r in m.rcpt_tos)
    assert originals == sorted("r%d@r.example" % i for i in range(20))
    (notice,) = up.reports()
    assert notice.rcpt_tos == ["root@client.example"]
    assert b"Subject: outbox: relay localhost needs a new OAuth2 login" in notice.data
    assert b"    outbox oauth2 login default\r\n" in notice.data
    assert b"refresh-revoked" not in notice.data and b"refresh-new" not in notice.data
    out = d.outbox("status")
    assert "relay localhost: ok" in out.stdout, out.stdout
    assert relay_state(metrics(d), "localhost") == "ok"
    assert "refresh-new" not in d.log() and "refresh-revoked" not in d.log()


@pytest.mark.slow(20)
def test_a_dead_token_stays_dead_and_told_across_a_restart(dead_token):
    """A restart neither asks the endpoint with the token it refused nor
    tells the postmaster again (SPEC "OAuth2": one notice, "not again
    until it recovered and failed again"); a login made while it was
    stopped ends it at the next start, and the state kept in SPOOL/rate
    with it."""
    d, up, srv, path = dead_token()
    for i in range(3):
        send(d, ["r%d@r.example" % i])
    d.wait_log(r"relay localhost: the postmaster's notice queued as \w+")
    state = os.path.join(d.spool, "rate", "default.login")
    assert os.path.isfile(state)
    d.stop()
    before = len(d.log())
    d.start()
    send(d, ["r3@r.example"])
    d.wait_log(r"relay localhost: login needed \(run `outbox oauth2 login default`\).*its mail waits", count=2)
    time.sleep(3)                     # tries at retry_min 1 s, had the endpoint been asked
    assert len(srv.grants("refresh_token")) == 1, srv.requests
    after = d.log()[before:]
    assert "the postmaster's notice queued" not in after, after
    assert len(d.queue_ids()) == 5    # the 4, and the one notice of the first run
    out = d.outbox("status")
    assert "relay localhost: login needed since" in out.stdout, out.stdout

    d.stop()                          # the login done while outboxd is stopped:
    write_token(path, "refresh-new")  # the file's identity differs at the start
    d.start()
    msgs = up.wait_for(5, timeout=20)  # (each message's own retry time, on a loaded machine)
    wait_queue_empty(d)
    assert len(srv.grants("refresh_token")) == 2
    assert len(up.reports()) == 1
    assert sorted(r for m in msgs if not up.is_report(m) for r in m.rcpt_tos) == \
        sorted("r%d@r.example" % i for i in range(4))
    assert not os.path.exists(state)  # alive again: a later refusal is news again


class AuthCounter:
    """Every AUTH the upstream gets, answered after HOLD_S with reply: when
    it came, and the most AUTH commands in flight at once."""
    HOLD_S = 0.5

    def __init__(self, up, reply):
        self.reply = reply
        self.times = []
        self.inflight = 0
        self.most = 0
        self.lock = threading.Lock()
        up.controller.handler.handle_AUTH = self.handle

    async def handle(self, server, session, envelope, args):
        with self.lock:
            self.times.append(time.time())
            self.inflight += 1
            self.most = max(self.most, self.inflight)
        await asyncio.sleep(self.HOLD_S)
        with self.lock:
            self.inflight -= 1
        return self.reply if self.reply else MISSING

    def count(self):
        with self.lock:
            return len(self.times)


M365_535 = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."

@pytest.mark.slow(15)
def test_told_once_until_it_works_even_after_its_hold(dead_token):
    """"Not again until it recovered": the endpoint may be asked again once
    retry_max has passed, and refuses again -- nothing recovered, so a
    restart after that sends no second notice (the state file keeps
    "told" until a token is had)."""
    d, up, srv, path = dead_token()
    send(d, ["r0@r.example"])
    d.wait_log(r"relay localhost: the postmaster's notice queued as \w+")
    d.stop()
    d.sections["queue"]["retry_max"] = "2s"
    d.write_conf()
    time.sleep(2.5)                   # the hold has passed since the refusal
    before = len(d.log())
    d.start()
    deadline = time.time() + 15
    while len(srv.grants("refresh_token")) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(srv.grants("refresh_token")) == 2, srv.requests   # asked again, refused again
    d.wait_log(r"relay localhost: login needed \(run `outbox oauth2 login default`\).*its mail waits", count=2)
    time.sleep(1)
    assert "the postmaster's notice queued" not in d.log()[before:], d.log()[before:]
    assert len(d.queue_ids()) == 2    # the message, and the one notice of the first run
    assert up.messages == []


@pytest.mark.slow(65)
def test_a_refused_login_is_one_session_per_backoff_and_says_what_to_do(relay_daemon):
    d, up = relay_daemon(relay={"workers": "4"}, extra={"queue": {"retry_min": "30s", "retry_max": "1h"}})
    auth = AuthCounter(up, M365_535)
    for i in range(50):
        send(d, ["r%d@r.example" % i])
    d.wait_log(r"535 5\.7\.139")
    first = auth.times[0]
    time.sleep(max(0, first + 60 - time.time()))
    with auth.lock:
        in_first_minute = [t for t in auth.times if t < first + 60]
    assert 1 <= len(in_first_minute) <= 2, auth.times
    assert auth.most == 1, auth.times
    assert up.messages == [] and "status=bounced" not in d.log()

    d.wait_log(r"relay localhost: down for \d+ s \(1 failure in a row\): "
               r"switch to OAuth2: outbox setup microsoft365")
    out = d.outbox("status")
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("relay localhost:")]
    assert len(line) == 1, out.stdout
    assert "paused until" in line[0] and M365_535 in line[0], line
    assert line[0].endswith("-- switch to OAuth2: outbox setup microsoft365"), line
    assert line[0].count("outbox setup microsoft365") == 1, line   # the reply alone, then its hint
    other = d.outbox("status", user=NOBODY)
    assert other.returncode == 0, other.stderr
    (mine,) = [ln for ln in other.stdout.splitlines() if ln.startswith("relay localhost:")]
    assert "paused until" in mine and "535" not in mine and "OAuth2" not in mine, mine
    (rel,) = json.loads(d.outbox("status", "--json", user=NOBODY).stdout)["relays"]
    assert rel["state"] == "down" and "reply" not in rel and "hint" not in rel, rel
    (rel,) = json.loads(d.outbox("status", "--json").stdout)["relays"]
    assert rel["reply"] == M365_535 and "outbox setup microsoft365" in rel["hint"], rel
    assert relay_state(metrics(d), "localhost") == "down"

    before = auth.count()
    r = d.outbox("flush")
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 10
    while auth.count() == before and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(5)                     # and no second one behind it
    assert auth.count() == before + 1, auth.times
    assert auth.most == 1
    assert up.messages == [] and "status=bounced" not in d.log()
