"""Reports of failed delivery (bounces): what the sender gets, who never
gets one, the postmaster's copy, expiry, and the crash-safe order of
queue.c BOUNCES, each asserted on what the upstream received."""

import email
import os
import re
import shutil
import time

import pytest

from test_delivery import send, wait_queue_empty


def parts(report):
    msg = email.message_from_bytes(report.data)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    return msg, msg.get_payload()


def test_the_sender_gets_a_report_it_can_read(relay_daemon):
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    send(d, ["gone@r.example"], b"Subject: the quarterly figures\nX-Mine: 1\n\nsecret body\n")
    (report,) = up.wait_for_reports(1)
    assert report.rcpt_tos == ["me@sender.example"] and up.originals() == []
    msg, (text, status, headers) = parts(report)
    assert msg["To"] == "<me@sender.example>" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["From"].startswith("Mail Delivery System <MAILER-DAEMON@")
    assert re.match(r"by \S+ \(outbox\) id F[0-9A-F]{15};", msg["Received"])
    assert "could not be delivered" in text.get_payload()
    assert "550 5.1.1 <gone@r.example>: Recipient address rejected" in text.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    fields = status.as_string()
    assert "Final-Recipient: rfc822; gone@r.example" in fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields
    assert re.search(r"Remote-MTA: dns; localhost\[127\.0\.0\.1\]:\d+", fields)
    assert "Diagnostic-Code: smtp; 550 5.1.1 <gone@r.example>" in fields
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: the quarterly figures" in headers.get_payload()
    assert b"secret body" not in report.data                 # never the body
    wait_queue_empty(d)
    assert re.search(r": report of failed delivery queued as F[0-9A-F]{15} to <me@sender\.example>",
                     d.log())


def test_a_message_with_the_null_sender_is_never_reported(relay_daemon):
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    r = d.sendmail(["-f", "", "gone@r.example"], b"Subject: a report itself\n\nx\n")
    assert r.returncode == 0, r.stderr
    d.wait_log(r"to=<gone@r\.example> .* status=bounced")
    wait_queue_empty(d)
    time.sleep(1.5)
    assert up.messages == [] and "report of failed delivery" not in d.log()


def test_postmaster_gets_a_copy_and_the_double_bounce_and_nothing_loops(relay_daemon):
    # (each report at once: the summaries are test_many_failures_of_one_sender_make_one_report)
    d, up = relay_daemon(extra={"address": {"postmaster": "pm@admin.example"},
                                "queue": {"report_interval": "0"}})
    up.reject_rcpt = {"gone@r.example"}
    send(d, ["gone@r.example"])
    (report,) = up.wait_for_reports(1)
    assert sorted(report.rcpt_tos) == ["me@sender.example", "pm@admin.example"]
    wait_queue_empty(d)
    # the sender's address fails too: the postmaster gets the report's
    # copy, and a report about the report (the double bounce), once
    up.reject_rcpt = {"gone@r.example", "lost@sender.example"}
    send(d, ["gone@r.example"], sender="lost@sender.example")
    reports = up.wait_for_reports(3)
    assert [r.rcpt_tos for r in reports[1:]] == [["pm@admin.example"], ["pm@admin.example"]]
    double = [r for r in reports[1:] if b"Final-Recipient: rfc822; lost@sender.example" in r.data]
    assert len(double) == 1
    wait_queue_empty(d)
    # and when the postmaster fails as well, it ends there
    up.reject_rcpt = {"gone@r.example", "lost@sender.example", "pm@admin.example"}
    send(d, ["gone@r.example"], sender="lost@sender.example")
    d.wait_log(r"to=<pm@admin\.example> .* status=bounced", count=2)
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.reports()) == 3


def test_expiry_reports_and_a_down_upstream_does_not_before_it(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"lifetime": "3s", "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_rcpt = True
    send(d, ["slow@r.example"])
    d.wait_log(r"status=deferred")
    time.sleep(1)
    assert up.messages == []                 # deferred, not reported, while it has time
    d.wait_log(r"to=<slow@r\.example> .* status=bounced \(4\.4\.7 message expired after 3s", timeout=30)
    up.tempfail_rcpt = False
    (report,) = up.wait_for_reports(1, timeout=30)
    assert b"message expired after 3s in the queue: 451 4.7.1" in report.data
    assert up.originals() == []


def crashed_state(d, up):
    """The state a crash leaves between the worker's marks and the
    report's commit, made by hand: gone@ is B in the file, the name has
    .B, kept@ still waits.  Returns (queue ID, path, bytes)."""
    up.tempfail_rcpt = True
    send(d, ["gone@r.example", "kept@r.example"])
    d.wait_log(r"status=deferred", count=2)
    d.stop()
    (orig,) = d.queue_ids()
    path = d.queue_path(orig)
    data = open(path, "rb").read().replace(b"\nrcpt Q <gone@r.example>\n", b"\nrcpt B <gone@r.example>\n", 1)
    assert b"rcpt B <gone@r.example>" in data
    os.unlink(path)
    path += ".B"
    with open(path, "wb") as f:
        f.write(data)
    up.tempfail_rcpt = False
    return orig, path, data


def restore(d, orig, path, data):
    for p in d.queue_paths().values():
        if os.path.basename(p).startswith(orig):
            os.unlink(p)
    with open(path, "wb") as f:
        f.write(data)
    shutil.chown(path, "outbox") if os.geteuid() == 0 else None


def test_a_crash_before_the_report_was_queued(relay_daemon):
    d, up = relay_daemon()
    orig, path, data = crashed_state(d, up)
    if os.geteuid() == 0:
        shutil.chown(path, "outbox")
    d.start()
    (report,) = up.wait_for_reports(1)
    assert report.rcpt_tos == ["me@sender.example"]
    assert b"Final-Recipient: rfc822; gone@r.example" in report.data
    assert b"kept@r.example" not in report.data.split(b"text/rfc822-headers")[0]
    assert [m.rcpt_tos for m in up.wait_for_originals(1)] == [["kept@r.example"]]
    wait_queue_empty(d)
    time.sleep(1)
    assert len(up.reports()) == 1 and len(up.originals()) == 1


def test_a_crash_after_the_report_was_queued_sends_it_once(relay_daemon):
    """The report committed, then a crash before the marks: at the next
    start the report is found (by its ID, a function of the message's)
    and not made again, and it is not sent before that is known."""
    d, up = relay_daemon()
    orig, path, data = crashed_state(d, up)
    if os.geteuid() == 0:
        shutil.chown(path, "outbox")
    up.tempfail_rcpt = True                      # the report is queued, and deferred (renamed)
    d.start()
    d.wait_log(r"%s: report of failed delivery queued as (F[0-9A-F]{15})" % orig)
    report_id = re.search(r"%s: report of failed delivery queued as (F[0-9A-F]{15})" % orig, d.log()).group(1)
    d.wait_log(r"%s: to=<me@sender\.example> .* status=deferred" % report_id)
    d.kill9()
    restore(d, orig, path, data)                 # as if the marks had not been made
    assert report_id in d.queue_ids()
    up.tempfail_rcpt = False
    d.start()
    assert d.sendmail(["-q"], b"").returncode == 0     # the report's retry is now
    reports = up.wait_for_reports(1)
    up.wait_for_originals(1)
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.reports()) == 1, [m.rcpt_tos for m in up.reports()]
    assert "report %s was queued before a restart" % report_id in d.log()
    assert reports[0].rcpt_tos == ["me@sender.example"]


def test_one_still_trying_report_after_delay_warning(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"delay_warning": "2s", "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_rcpt = True
    send(d, ["slow@r.example"])
    d.wait_log(r"status=deferred")
    d.wait_log(r": report of delayed delivery queued as F[0-9A-F]{15} to <me@sender\.example>", timeout=30)
    d.wait_log(r"to=<slow@r\.example> .* status=deferred", count=4, timeout=30)   # later tries: no more
    up.tempfail_rcpt = False
    # the report itself waits for its recipient too: once the upstream takes mail, both go
    (report,) = up.wait_for_reports(1, timeout=30)
    msg, (text, status, headers) = parts(report)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert "Action: delayed" in status.as_string() and "Status: 4.7.1" in status.as_string()
    assert "451 4.7.1 <slow@r.example>" in text.get_payload()
    assert [m.rcpt_tos for m in up.wait_for_originals(1, timeout=30)] == [["slow@r.example"]]
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.reports()) == 1                       # one, and no failure report
    assert d.log().count("report of delayed delivery") == 1


@pytest.mark.parametrize("warning,sender", [("0", "me@sender.example"), ("1s", "")],
                         ids=["off", "null-sender"])
def test_no_still_trying_report_when_off_or_for_the_null_sender(relay_daemon, warning, sender):
    d, up = relay_daemon(extra={"queue": {"delay_warning": warning, "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_rcpt = True
    r = d.sendmail(["-f", sender, "slow@r.example"], b"Subject: n\n\nx\n")
    assert r.returncode == 0
    d.wait_log(r"status=deferred", count=4, timeout=30)
    assert "report of" not in d.log()


def test_no_report_is_sent_before_the_walk_has_found_its_message(relay_daemon):
    """A crash left a queued report and its message still .B; at the
    next start the walk (slowed: every directory read 10 ms) finds the
    report in the first bucket and the message in the last.  The report
    must wait until the walk is done and the message's recovery has
    found it, or it is sent, removed, and made again: two reports."""
    from test_scale import slow_disk, mkqueue
    d, up = relay_daemon()
    orig, path, data = crashed_state(d, up)
    if os.geteuid() == 0:
        shutil.chown(path, "outbox")
    up.tempfail_rcpt = True
    d.start()
    d.wait_log(r"%s: report of failed delivery queued as (F[0-9A-F]{15})" % orig)
    report_id = re.search(r"%s: report of failed delivery queued as (F[0-9A-F]{15})" % orig, d.log()).group(1)
    d.wait_log(r"%s: to=<me@sender\.example> .* status=deferred" % report_id)
    d.kill9()
    restore(d, orig, path, data)
    # the report in bucket 00, the message in FF: the walk's first and last
    queue = os.path.join(d.spool, "queue")
    rp = d.queue_path(report_id)
    os.rename(rp, os.path.join(queue, "00", os.path.basename(rp)))
    os.rename(path, os.path.join(queue, "FF", os.path.basename(path)))
    # 6000 others, due in an hour: the walk hands its finds over in
    # batches of 4096, so the report (bucket 00) is scheduled a second
    # before the walk reaches its message (FF)
    mkqueue(d, 6000, "--deferred", "3600")
    up.tempfail_rcpt = False
    slow_disk(d, 10)
    d.start()
    d.wait_log(r"queue indexed:", timeout=60)
    up.wait_for_reports(1, timeout=30)
    up.wait_for_originals(1, timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline and {orig, report_id} & set(d.queue_ids()):
        time.sleep(0.1)
    time.sleep(1.5)
    assert len(up.reports()) == 1, d.log()[-3000:]
    assert "report %s was queued before a restart" % report_id in d.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a queue file the daemon cannot read")
def test_an_operator_action_waits_while_a_report_is_being_queued(relay_daemon):
    """A message whose report cannot be made yet (here its file is
    unreadable, as on a failing disk) stays out of delivery and out of
    the operator's hands until it is: hold, delete and flush say so."""
    from test_control import tool
    d, up = relay_daemon()
    orig, path, data = crashed_state(d, up)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    d.start()
    d.wait_log(r"%s: the report about its recipients is not queued yet" % orig)
    for verb in ("hold", "delete", "flush"):
        r = tool(d, verb, orig)
        assert r.returncode == 75 and "a report about it is being queued" in r.stderr, (verb, r)
    assert orig in d.queue_ids() and up.messages == []


def delivery_status_blocks(status_part):
    """The field blocks of a message/delivery-status part: the
    per-message one first, then one per recipient."""
    return [dict(b.items()) for b in status_part.get_payload()]


def test_many_failures_of_one_sender_make_one_report(relay_daemon):
    """A storm of failures for one sender: the first report goes at
    once, the ones that follow within report_interval go as one summary
    (every recipient in its status part, each naming its message);
    another sender is not held up by it."""
    d, up = relay_daemon(extra={"queue": {"report_interval": "3s"}})
    up.reject_rcpt = {"gone@r.example", "lost@r.example"}
    send(d, ["gone@r.example"], b"Subject: run 1\n\nx\n")
    (first,) = up.wait_for_reports(1)
    for n in range(2, 6):
        send(d, ["gone@r.example", "lost@r.example"] if n == 3 else ["gone@r.example"],
             b"Subject: run %d\n\nx\n" % n)
    send(d, ["gone@r.example"], b"Subject: other\n\nx\n", sender="other@sender.example")
    reports = up.wait_for_reports(3, timeout=30)
    time.sleep(4)                               # nothing more comes after the interval
    assert len(up.reports()) == 3
    to_me = [r for r in reports if r.rcpt_tos == ["me@sender.example"]]
    assert len(to_me) == 2 and to_me[0] is first
    assert [r.rcpt_tos for r in reports if r not in to_me] == [["other@sender.example"]]
    msg, (text, status, *rest) = parts(first)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender" and len(rest) == 1
    summary, (text, status, *rest) = parts(to_me[1])
    assert rest == []                            # no header section: RFC 3462 allows one
    assert summary["Subject"] == "Undelivered Mail Returned to Sender (4 messages)"
    words = text.get_payload()
    for n in range(2, 6):
        assert "Subject: run %d\r\n" % n in words or "Subject: run %d\n" % n in words
    assert "run 1" not in words
    blocks = delivery_status_blocks(status)
    assert list(blocks[0]) == ["Reporting-MTA"]
    rcpts = [(b["Final-Recipient"], b["Status"], b["X-Outbox-Queue-ID"]) for b in blocks[1:]]
    assert sorted(r[0] for r in rcpts) == ["rfc822; gone@r.example"] * 4 + ["rfc822; lost@r.example"]
    assert all(r[1] == "5.1.1" for r in rcpts)
    queued = re.findall(r"(\w{16}): report of failed delivery queued as (F\w{15}) to <me@sender\.example> "
                        r"\(a summary of 4 messages\)", d.log())
    assert len(queued) == 4 and len({r for _, r in queued}) == 1
    assert sorted({r[2] for r in rcpts}) == sorted(o for o, _ in queued)
    wait_queue_empty(d)
    assert not [f for _, _, fs in os.walk(os.path.join(d.spool, "defer")) for f in fs]   # no mark left


def crashed_states(d, up, n):
    """crashed_state for n messages of one sender, each to gone@ only."""
    up.tempfail_rcpt = True
    for i in range(n):
        send(d, ["gone@r.example"], b"Subject: crash %d\n\nx\n" % i)
    d.wait_log(r"status=deferred", count=n)
    d.stop()
    saved = {}
    for orig, path in d.queue_paths().items():
        data = open(path, "rb").read().replace(b"\nrcpt Q <gone@r.example>\n", b"\nrcpt B <gone@r.example>\n", 1)
        os.unlink(path)
        saved[orig] = (path + ".B", data)
        restore(d, orig, path + ".B", data)
    return saved


def test_a_crash_after_a_summary_was_queued_sends_it_once(relay_daemon):
    """Three messages' failures: the first reported alone, the other two
    in a summary; a crash after the summary's commit and before the
    marks, and at the next start neither is reported again (the second
    by the summary's ID, which is its own report's, the third by its
    .report mark)."""
    d, up = relay_daemon(extra={"queue": {"report_interval": "2s"}})
    saved = crashed_states(d, up, 3)
    d.start()                                    # upstream still greylists: the reports wait
    d.wait_log(r"report of failed delivery queued as (F\w{15}) to <me@sender\.example> \(a summary of 2",
               count=2, timeout=30)
    # the summary's first member gave it its ID
    (second, summary), (third, _) = re.findall(r"(\w{16}): report of failed delivery queued as (F\w{15}) "
                                                r"to <me@sender\.example> \(a summary", d.log())
    d.wait_log(r"%s: to=<me@sender\.example> .* status=deferred" % summary)
    d.kill9()
    for orig in (second, third):                 # as if the marks had not been made
        restore(d, orig, *saved[orig])
    # and the third's mark, which the summary's commit had been waiting
    # for (queue.h store_note_report) and its marks removed again
    path = saved[third][0]
    bucket, tries = os.path.basename(os.path.dirname(path)), path.split(".")[-2]
    with open(os.path.join(d.spool, "defer", bucket, third + ".report"), "w") as f:
        f.write("%s %s\n" % (summary, tries))
    assert summary in d.queue_ids()
    up.tempfail_rcpt = False
    d.start()
    assert d.sendmail(["-q"], b"").returncode == 0
    up.wait_for_reports(2)
    wait_queue_empty(d)
    time.sleep(3)                                # past the interval: nothing more
    reports = up.reports()
    assert len(reports) == 2, [r.data[:300] for r in reports]
    got = sorted(re.findall(rb"X-Outbox-Queue-ID: (\w{16})", b"".join(r.data for r in reports)))
    assert got == sorted(o.encode() for o in saved)
    log = d.log()
    assert "%s: report %s was queued before a restart" % (second, summary) in log
    assert "%s: report %s was queued before a restart" % (third, summary) in log
