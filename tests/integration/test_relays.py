"""Several relays (SPEC "Relays"): failover at the connection level
(closed port, wrong certificate, AUTH refused), replies to recipients
final at the relay that gave them, routing by envelope sender, a relay
used again once it is back, and relays added and removed by SIGHUP;
each asserted on what the upstream fixtures received."""

import os
import re
import signal
import time

import pytest

import upstream as upstream_mod
from conftest import IS_ROOT, _outbox_gid
from test_delivery import send, wait_queue_empty


@pytest.fixture
def relays(make_daemon, make_upstream, workdir, certs):
    """relays(spec...) -> (daemon, {section: upstream or None}).  Each
    spec is (section, upstream keywords or None for a closed port,
    extra relay keys)."""

    def make(*specs, extra=None):
        sections, ups = {}, {}
        for n, (section, up_kw, keys) in enumerate(specs):
            up = make_upstream(**dict({"users": {"user1": "secret-pw"}}, **(up_kw or {}))) \
                if up_kw is not None else None
            pw = os.path.join(workdir, "pw%d" % n)
            with open(pw, "w") as f:
                f.write("secret-pw\n")
            os.chmod(pw, 0o640)
            if IS_ROOT:
                os.chown(pw, 0, _outbox_gid())
            r = {"host": "localhost", "port": str(up.port if up else upstream_mod.free_port()),
                 "ca_file": os.path.join(certs, "ca.pem"),
                 "tls": "starttls", "workers": "1", "timeout": "5s", "user": "user1", "password_file": pw}
            r.update(keys or {})
            sections[section] = r
            ups[section] = up
        ex = dict(sections, queue={"retry_min": "1s", "retry_max": "2s", "report_interval": "0"})
        for k, v in (extra or {}).items():
            ex.setdefault(k, {}).update(v)
        d = make_daemon(extra=ex)
        return d, ups

    return make


def test_a_closed_port_moves_the_message_to_the_next_relay_at_once(relays):
    d, ups = relays(("relay", None, {}), ("relay.backup", {}, {}))
    t0 = time.time()
    send(d, ["a@r.example"], b"Subject: failover\n\nbody\n")
    (m,) = ups["relay.backup"].wait_for(1)
    assert m.rcpt_tos == ["a@r.example"] and m.mail_from == "me@sender.example"
    assert m.data.endswith(b"\r\nbody\r\n") and m.login == "user1"
    assert time.time() - t0 < 5                # not after a retry: at once
    d.wait_log(r"to=<a@r\.example> relay=backup\[127\.0\.0\.1\]:\d+ .* tries=1 status=sent")
    log = d.log()
    assert re.search(r"relay localhost: down for \d+ s \(1 failure in a row\)", log)
    assert re.search(r": tried at relay backup instead", log)
    assert "status=deferred" not in log
    wait_queue_empty(d)


@pytest.mark.parametrize("what", ["certificate", "auth"])
def test_a_wrong_certificate_or_a_refused_auth_fails_over(relays, what):
    first = {"cert": "wrong-host"} if what == "certificate" else {"users": {"user1": "another-pw"}}
    d, ups = relays(("relay", first, {}), ("relay.backup", {}, {}))
    send(d, ["a@r.example"])
    (m,) = ups["relay.backup"].wait_for(1)
    assert m.rcpt_tos == ["a@r.example"]
    assert ups["relay"].messages == []
    reason = "verification failed" if what == "certificate" else "535"
    assert re.search(r"relay localhost.*%s" % reason, d.log()), d.log()
    wait_queue_empty(d)


def test_a_reply_to_a_recipient_is_final_at_its_relay(relays):
    """A 550 from the first relay is not retried at the second: the
    recipient bounces; the other recipient is sent there."""
    d, ups = relays(("relay", {}, {}), ("relay.backup", {}, {}))
    ups["relay"].reject_rcpt = {"gone@r.example"}
    send(d, ["gone@r.example", "ok@r.example"])
    d.wait_log(r"to=<gone@r\.example> relay=localhost\[.* status=bounced \(550")
    reports = ups["relay"].wait_for_reports(1)
    assert [m.rcpt_tos for m in ups["relay"].originals()] == [["ok@r.example"]]
    assert reports[0].rcpt_tos == ["me@sender.example"]
    wait_queue_empty(d)
    time.sleep(1)
    assert ups["relay.backup"].messages == []


def test_senders_route_by_address_then_domain_then_any(relays):
    d, ups = relays(("relay", {}, {}),
                    ("relay.work", {}, {"senders": "*@work.example"}),
                    ("relay.boss", {}, {"senders": "boss@work.example, ceo@work.example", "priority": "50"}))
    send(d, ["a@r.example"], sender="someone@work.example")
    send(d, ["b@r.example"], sender="BOSS@work.example")
    send(d, ["c@r.example"], sender="me@home.example")
    for section, rcpt, sender in (("relay.work", "a@r.example", "someone@work.example"),
                                  ("relay.boss", "b@r.example", "BOSS@work.example"),
                                  ("relay", "c@r.example", "me@home.example")):
        (m,) = ups[section].wait_for(1)
        assert (m.rcpt_tos, m.mail_from) == ([rcpt], sender), section
    wait_queue_empty(d)
    time.sleep(0.5)
    assert [len(u.messages) for u in ups.values()] == [1, 1, 1]


def test_a_relay_is_used_again_once_it_is_back(relays, certs):
    d, ups = relays(("relay", {}, {}), ("relay.backup", {}, {}))
    first = ups["relay"]
    port = first.port
    first.stop()
    send(d, ["one@r.example"])
    assert [m.rcpt_tos for m in ups["relay.backup"].wait_for(1)] == [["one@r.example"]]
    again = upstream_mod.Upstream(certs, port=port, users={"user1": "secret-pw"}).start()
    try:
        time.sleep(2.5)                          # its backoff (retry_min 1s .. retry_max 2s)
        send(d, ["two@r.example"])
        assert [m.rcpt_tos for m in again.wait_for(1)] == [["two@r.example"]]
        d.wait_log(r"relay localhost: up again")
        assert len(ups["relay.backup"].messages) == 1
    finally:
        again.stop()


def test_no_relay_left_defers_and_the_next_try_goes_where_it_can(relays):
    d, ups = relays(("relay", None, {}), ("relay.backup", None, {}))
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> relay=backup:\d+ .* status=deferred")
    assert re.search(r"relay localhost: down", d.log()) and re.search(r"relay backup: down", d.log())


def test_sighup_adds_and_removes_relays_without_losing_mail(relays, make_upstream):
    d, ups = relays(("relay", None, {}))
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> .* status=deferred")
    late = make_upstream(users={"user1": "secret-pw"})
    d.sections["relay.late"] = dict(d.sections["relay"], port=str(late.port), ca_file=late.ca_file)
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"relay late: 1 delivery workers for localhost:%d" % late.port)
    assert d.sendmail(["-q"], b"").returncode == 0
    assert [m.rcpt_tos for m in late.wait_for(1)] == [["a@r.example"]]
    # and without [relay] (the closed port) mail goes to late alone
    del d.sections["relay"]
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", count=2)
    send(d, ["b@r.example"])
    assert [m.rcpt_tos for m in late.wait_for(2)][1] == ["b@r.example"]
    wait_queue_empty(d)
    assert d.proc.poll() is None


def test_a_reload_that_lowers_workers_leaves_the_relay_its_workers(relay_daemon):
    """A reload from 4 workers to 2, five times: each time the next
    message goes out at once (before: every worker of the relay took
    itself for one too many and left, about one reload in three, and its
    mail waited until the next reload or restart)."""
    d, up = relay_daemon(relay={"workers": "4"})
    for i in range(5):
        d.sections["relay"]["workers"] = "2" if i % 2 == 0 else "4"
        d.write_conf()
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", count=i + 1)
        time.sleep(0.3)     # the workers too many have gone
        send(d, ["r%d@r.example" % i])
        assert [m.rcpt_tos for m in up.wait_for(i + 1, timeout=10)][i] == ["r%d@r.example" % i]


def test_relay_keys_are_checked_per_section(make_daemon, workdir):
    from test_config_check import check
    bad = os.path.join(workdir, "bad.conf")
    with open(bad, "w") as f:
        f.write("[relay]\nhost = a.example\npriority = 3\n"
                "[relay.b@d]\nhost = b.example\n"
                "[relay.work]\nhost = w.example\nsenders = *@work.example, not an address\n"
                "[relay.x]\nhost = x.example\ncolour = blue\n")
    r = check(bad)
    assert r.returncode != 0
    for want in (r"bad\.conf:3: \[relay\] priority: only in a \[relay\.NAME\] section",
                 r"\[relay\.b@d\]: a relay's NAME is",
                 r"bad\.conf:8: \[relay\.work\] senders: 'not' is neither an address nor \*@domain",
                 r"bad\.conf:11: \[relay\.x\] colour: unknown key"):
        assert re.search(want, r.stderr.decode()), (want, r.stderr)
    only = os.path.join(workdir, "only.conf")
    with open(only, "w") as f:
        f.write("[relay.work]\nhost = w.example\nsenders = *@work.example\n")
    r = check(only)
    assert r.returncode != 0 and b"no relay takes mail from any sender" in r.stderr


def test_metrics_count_each_relay_apart(relays):
    from test_control import parse_metrics
    d, ups = relays(("relay", None, {}), ("relay.backup", {}, {}))
    send(d, ["a@r.example"])
    ups["relay.backup"].wait_for(1)
    d.wait_log(r"to=<a@r\.example> relay=backup.* status=sent")
    deadline = time.time() + 10
    while True:                                  # the loop counts the result just after the log line
        r = d.outbox("metrics")
        assert r.returncode == 0, r.stderr
        m, _ = parse_metrics(r.stdout)
        if m.get(("outbox_recipients_sent_total", (("relay", "backup"),))) or time.time() > deadline:
            break
        time.sleep(0.1)
    assert m[("outbox_recipients_sent_total", (("relay", "backup"),))] == 1
    assert ("outbox_recipients_sent_total", (("relay", "localhost"),)) not in m
    assert m[("outbox_upstream_sessions_failed_total", (("reason", "connect"), ("relay", "localhost")))] == 1
    assert m[("outbox_upstream_sessions_opened_total", (("relay", "backup"),))] == 1
    assert m[("outbox_upstream_sessions_opened_total", (("relay", "localhost"),))] == 0


def test_max_rate_paces_a_relay_across_its_workers(relays):
    d, ups = relays(("relay", {}, {"max_rate": "2/s", "workers": "3"}))
    for i in range(6):
        send(d, ["m%d@r.example" % i])
    msgs = ups["relay"].wait_for(6, timeout=30)
    at = sorted(m.at for m in msgs)
    for i in range(len(at) - 2):                 # never 3 within a second
        assert at[i + 2] - at[i] >= 0.9, at
    assert at[-1] - at[0] >= 1.8
    wait_queue_empty(d)


def test_max_rate_holds_across_a_restart(relays):
    """A daemon restarted in a loop must not exceed the quota: the sends
    are remembered in SPOOL/rate/."""
    d, ups = relays(("relay", {}, {"max_rate": "2/6s"}))
    send(d, ["a@r.example"])
    send(d, ["b@r.example"])
    first = ups["relay"].wait_for(2)
    d.stop()
    d.start()
    send(d, ["c@r.example"])
    d.wait_log(r"to=<c@r\.example> .* status=deferred \(delivery temporarily suspended: "
               r"relay localhost is at its max_rate 2/6s\) next=\+\d+s")
    third = ups["relay"].wait_for(3, timeout=30)[2]
    assert third.rcpt_tos == ["c@r.example"]
    assert third.at - min(m.at for m in first) >= 5.5
    assert os.path.exists(os.path.join(d.spool, "rate", "default"))


def test_max_rate_file_is_opened_off_the_loop_and_follows_a_reload(relays):
    """The loop thread never touches the disk: SPOOL/rate/NAME is opened
    and rewritten by the first worker that counts a send after a start or
    a reload that changed max_rate, not by the reload itself; and the new
    rate is the one in force."""
    from test_commit_steps import NO_LSAN, trace_opens
    d, ups = relays(("relay", {}, {"max_rate": "1/20s"}))
    d.stop()
    d.prefix = NO_LSAN                    # (LeakSanitizer cannot run under ptrace)
    d.start()
    opened = trace_opens(d, os.path.join(d.spool, "rate", "default"))
    d.sections["relay"]["max_rate"] = "3/20s"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded")
    for i in range(3):                    # 1/20s would keep two of them 20 s
        send(d, ["m%d@r.example" % i])
    ups["relay"].wait_for(3, timeout=10)
    threads, lines = opened()
    assert d.proc.pid not in threads, lines     # the main thread runs the loop
    wait_queue_empty(d)


@pytest.mark.parametrize("reply", ["550 5.4.5 Daily user sending quota exceeded.",
                                   "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException;"
                                   " Failed to process message due to a permanent exception",
                                   "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"])
def test_a_quota_reply_defers_and_holds_the_relay_back(relays, reply):
    """Not a bounce: the message waits, the relay is held back, and the
    next message (and the retry) go to the backup relay."""
    d, ups = relays(("relay", {}, {}), ("relay.backup", {}, {}))
    ups["relay"].mail_reply = reply
    send(d, ["a@r.example"])
    code = reply.split()[0]
    d.wait_log(r"to=<a@r\.example> relay=localhost\[.* status=deferred \(%s" % code)
    d.wait_log(r"relay localhost: held back for \d+ s after a quota or rate reply \(%s" % code)
    send(d, ["b@r.example"])
    got = sorted(m.rcpt_tos[0] for m in ups["relay.backup"].wait_for(2, timeout=30))
    assert got == ["a@r.example", "b@r.example"]
    wait_queue_empty(d)
    assert "status=bounced" not in d.log() and ups["relay"].messages == []
    assert [m for m in ups["relay.backup"].messages if m.mail_from == ""] == []   # no report
