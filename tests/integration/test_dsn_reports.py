"""What the sender asked (RFC 3461) decides the reports it gets, and the
reports read right for bounce processors (RFC 3464, 3463, 6522, 6533):
a "relayed" notice for NOTIFY=SUCCESS through a relay without DSN, none
through one with DSN, no failure report for NOTIFY=NEVER, the delay
warning only for NOTIFY with DELAY or none, RET=FULL returning the
message byte for byte, the exact status of local failures and the
global form; each asserted on what the upstream received (issue 23)."""
import email
import re
import time

import pytest

from test_delivery import wait_queue_empty

SENDER = "me@sender.example"


def submit(d, mail_params, rcpts, data):
    """One transaction on the socket: MAIL with its parameters, each
    (address, parameters) RCPT, the message (CRLF lines); its queue ID."""
    c = d.raw()
    c.cmd(b"EHLO me")
    code, text = c.cmd(("MAIL FROM:<%s> %s" % (SENDER, mail_params)).strip().encode())
    assert code == 250, text
    for addr, params in rcpts:
        code, text = c.cmd(("RCPT TO:<%s> %s" % (addr, params)).strip().encode())
        assert code == 250, text
    assert c.cmd(b"DATA")[0] == 354
    stuffed = (b"\r\n" + data).replace(b"\r\n.", b"\r\n..")[2:]   # RFC 5321 4.5.2
    code, text = c.cmd(stuffed + b".")
    assert code == 250, text
    c.close()
    return text.decode().rsplit(" ", 1)[1]


def report_parts(report):
    msg = email.message_from_bytes(report.data)
    assert msg.get_content_type() == "multipart/report"
    return msg, msg.get_payload()


def boundary_of(report):
    return re.search(rb'boundary="([^"]+)"', report.data).group(1)


def raw_last_part(report):
    """The bytes of the report's third part (its header and body), as
    they came on the wire."""
    b = boundary_of(report)
    body = report.data.split(b"\r\n--" + b + b"--", 1)[0]
    return body.rsplit(b"\r\n--" + b + b"\r\n", 1)[1]


MSG = b"From: app@sender.example\r\nSubject: nightly run\r\n\r\nline one\r\n.a line with a dot\r\nthe end\r\n"


def test_notify_success_through_a_relay_without_dsn_gets_a_relayed_notice(relay_daemon):
    d, up = relay_daemon()
    qid = submit(d, "RET=FULL ENVID=QQ+2B314159",
                 [("a@r.example", "NOTIFY=SUCCESS ORCPT=rfc822;A+2Bb@r.example"), ("b@r.example", "")], MSG)
    (orig,) = up.wait_for_originals(1)
    assert sorted(orig.rcpt_tos) == ["a@r.example", "b@r.example"]
    (report,) = up.wait_for_reports(1)
    assert report.rcpt_tos == [SENDER]                      # no postmaster copy of good news
    msg, (text, status, headers) = report_parts(report)
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Subject"] == "Successful Mail Delivery Report"
    words = text.get_payload()
    assert "does not\r\noffer delivery status notifications (DSN)" in words
    assert "this is the\r\nlast notice this system can give" in words
    fields = report.data.split(b"Content-Type: message/delivery-status\r\n\r\n", 1)[1]
    fields = fields.split(b"\r\n--" + boundary_of(report), 1)[0].decode()
    blocks = fields.split("\r\n\r\n")
    assert blocks[0].startswith("Original-Envelope-Id: QQ+314159\r\nReporting-MTA: dns; "), blocks[0]
    assert "X-Outbox-Queue-ID: %s" % qid in blocks[0]
    assert len(blocks) == 2, fields                          # a@r.example only: b asked nothing
    assert re.fullmatch(r"Original-Recipient: rfc822; A\+b@r\.example\r\n"
                        r"Final-Recipient: rfc822; a@r\.example\r\n"
                        r"Action: relayed\r\nStatus: 2\.0\.0\r\n"
                        r"Remote-MTA: dns; localhost\[127\.0\.0\.1\]:\d+\r\n"
                        r"Diagnostic-Code: smtp; 250 .*\r\n", blocks[1]), blocks[1]
    # good news carries the header section only, RET=FULL or not
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: nightly run" in headers.get_payload()
    assert b"line one" not in report.data
    wait_queue_empty(d)
    log = d.log()
    assert re.search(r"to=<a@r\.example> .* status=sent \(.*\) dsn=relayed", log)
    assert re.search(r"%s: report of relayed delivery queued as F[0-9A-F]{15} to <me@sender\.example>" % qid, log)


def test_notify_success_through_a_relay_with_dsn_gets_no_local_notice(relay_daemon):
    d, up = relay_daemon()
    up.dsn = True
    submit(d, "", [("a@r.example", "NOTIFY=FAILURE,SUCCESS")], MSG)
    up.wait_for_originals(1)
    wait_queue_empty(d)
    time.sleep(1.5)
    assert up.reports() == [] and "report of" not in d.log() and "dsn=relayed" not in d.log()


def test_notify_never_to_a_rejected_recipient_makes_no_report(relay_daemon):
    d, up = relay_daemon(extra={"address": {"postmaster": "pm@admin.example"}})
    up.reject_rcpt = {"gone@r.example", "also@r.example"}
    submit(d, "", [("gone@r.example", "NOTIFY=NEVER"), ("also@r.example", "NOTIFY=SUCCESS,DELAY")], MSG)
    d.wait_log(r"to=<gone@r\.example> .* status=bounced \(550 5\.1\.1 .*\) dsn=none \(NOTIFY\)")
    d.wait_log(r"to=<also@r\.example> .* status=bounced \(550 5\.1\.1 .*\) dsn=none \(NOTIFY\)")
    wait_queue_empty(d)
    time.sleep(1.5)
    assert up.messages == [] and "report of" not in d.log()   # not to the sender, not to the postmaster


def test_notify_failure_gets_the_failure_report(relay_daemon):
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    submit(d, "", [("gone@r.example", "NOTIFY=FAILURE ORCPT=rfc822;gone@r.example"), ("ok@r.example", "NOTIFY=NEVER")], MSG)
    (report,) = up.wait_for_reports(1)
    msg, (text, status, headers) = report_parts(report)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    s = status.as_string()
    assert "Original-Recipient: rfc822; gone@r.example\nFinal-Recipient: rfc822; gone@r.example\n" \
           "Action: failed\nStatus: 5.1.1\n" in s
    assert "ok@r.example" not in s and "Original-Envelope-Id" not in s
    wait_queue_empty(d)


def test_ret_full_returns_the_message_byte_for_byte(relay_daemon):
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    qid = submit(d, "RET=FULL", [("gone@r.example", "")], MSG)
    (report,) = up.wait_for_reports(1)
    part = raw_last_part(report)
    head, body = part.split(b"\r\n\r\n", 1)
    assert head == b"Content-Type: message/rfc822"
    # the queued message: our Received line, then every byte as submitted
    assert body.startswith(b"Received: ") and body.endswith(b"\r\n" + MSG), part
    assert b"The message is attached whole, as you asked (RET=FULL)." in report.data
    wait_queue_empty(d)
    assert qid not in d.queue_ids()


def test_ret_full_over_max_message_size_returns_the_headers_and_says_why(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"max_message_size": "2048"}})
    up.reject_rcpt = {"gone@r.example"}
    big = MSG + b"x" * 70 + b"\r\n"
    big = big + (b"y" * 70 + b"\r\n") * ((2040 - len(big)) // 72)
    assert len(big) <= 2048
    submit(d, "RET=FULL", [("gone@r.example", "")], big)
    (report,) = up.wait_for_reports(1)
    part = raw_last_part(report)
    assert part.startswith(b"Content-Type: text/rfc822-headers\r\n\r\nReceived: "), part
    assert part.endswith(b"From: app@sender.example\r\nSubject: nightly run\r\n"), part
    assert b"yyyy" not in report.data and b"line one" not in report.data
    assert re.search(rb"you asked for it whole \(RET=FULL\), but it is \d+ octets, and a\r\n"
                     rb"report returning it must fit in 2048 \(\[queue\] max_message_size\)", report.data)


def test_ret_hdrs_returns_the_headers(relay_daemon):
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    submit(d, "RET=HDRS ENVID=two", [("gone@r.example", "")], MSG)   # (an ENVID: alone, not in a summary)
    (report,) = up.wait_for_reports(1)
    assert raw_last_part(report).startswith(b"Content-Type: text/rfc822-headers\r\n\r\n")
    assert b"line one" not in report.data


@pytest.mark.parametrize("notify,warned", [("NOTIFY=DELAY", True), ("", True), ("NOTIFY=FAILURE", False),
                                           ("NOTIFY=SUCCESS", False)],
                         ids=["delay", "none", "failure-only", "success-only"])
def test_the_delay_warning_follows_notify(relay_daemon, notify, warned):
    d, up = relay_daemon(extra={"queue": {"delay_warning": "2s", "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_rcpt = True
    qid = submit(d, "", [("slow@r.example", notify)], MSG)
    d.wait_log(r"%s: to=<slow@r\.example> .* status=deferred" % qid, count=5, timeout=30)
    assert ("report of delayed delivery" in d.log()) == warned, d.log()
    if warned:
        up.tempfail_rcpt = False
        (report,) = up.wait_for_reports(1, timeout=30)
        assert b"Action: delayed" in report.data


def test_the_delay_warning_lists_only_who_asked_for_it(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"delay_warning": "2s", "retry_min": "1s", "retry_max": "1s"}})
    up.tempfail_rcpt = True
    submit(d, "", [("quiet@r.example", "NOTIFY=FAILURE"), ("told@r.example", "NOTIFY=DELAY,FAILURE")], MSG)
    d.wait_log(r"report of delayed delivery queued as", timeout=30)
    up.tempfail_rcpt = False
    (report,) = up.wait_for_reports(1, timeout=30)
    assert b"Final-Recipient: rfc822; told@r.example\r\nAction: delayed" in report.data
    assert b"quiet@r.example" not in report.data.split(b"text/rfc822-headers")[0]


def test_over_the_upstream_size_limit_is_5_3_4(relay_daemon):
    d, up = relay_daemon(up_kw={"data_size_limit": 4000})
    up.reject_rcpt = set()
    submit(d, "", [("a@r.example", "")], MSG + (b"z" * 70 + b"\r\n") * 80)
    d.wait_log(r"status=bounced \(5\.3\.4 message size \d+ exceeds the upstream's limit of 4000\)")
    (report,) = up.wait_for_reports(1)
    msg, (text, status, headers) = report_parts(report)
    s = status.as_string()
    assert "Action: failed\nStatus: 5.3.4\n" in s, s
    assert "Diagnostic-Code: x-outbox; 5.3.4 message size" in s
    wait_queue_empty(d)
    assert up.originals() == []           # failed at once: nothing was sent


def test_utf8_to_a_relay_without_smtputf8_is_5_6_7_in_a_global_report(relay_daemon):
    d, up = relay_daemon(up_kw={"smtputf8": False})
    r = d.sendmail(["j\u00f6rg@r.example".encode()], b"Subject: u\n\nx\n")
    assert r.returncode == 0, r.stderr
    d.wait_log(r"status=bounced \(5\.6\.7 message needs SMTPUTF8 and the upstream lacks it\)")
    (report,) = up.wait_for_reports(1)      # to an ASCII sender: it needs no SMTPUTF8
    msg, (text, status, headers) = report_parts(report)
    # RFC 6522: the report-type names the second part; RFC 6533 the parts
    assert msg.get_param("report-type") == "global-delivery-status"
    assert status.get_content_type() == "message/global-delivery-status"
    assert headers.get_content_type() == "message/global-headers"
    assert b"Final-Recipient: utf-8; j\xc3\xb6rg@r.example\r\nAction: failed\r\nStatus: 5.6.7\r\n" in report.data
    assert b"report-type=delivery-status" not in report.data and b"text/rfc822-headers" not in report.data
    wait_queue_empty(d)
    assert up.originals() == []


def test_sendmail_n_never_to_a_rejected_recipient_makes_no_report(relay_daemon):
    """The monitoring script's `sendmail -N never`: the rejection is
    logged and counted, nobody gets a report (issue 23 point 6)."""
    d, up = relay_daemon(extra={"address": {"postmaster": "pm@admin.example"}})
    up.reject_rcpt = {"gone@r.example"}
    r = d.sendmail(["-f", SENDER, "-N", "never", "gone@r.example"], b"Subject: cron\n\nout\n")
    assert r.returncode == 0, r.stderr
    d.wait_log(r"to=<gone@r\.example> .* status=bounced \(550 5\.1\.1 .*\) dsn=none \(NOTIFY\)")
    wait_queue_empty(d)
    time.sleep(1.5)
    assert up.messages == [] and "report of" not in d.log()
    st = d.outbox("status")
    assert re.search(r"since start: 1 received, 0 sent, 0 deferred, 1 bounced", st.stdout), st.stdout


def test_notify_success_through_a_relay_with_dsn_goes_upstream(relay_daemon):
    """With DSN offered the request travels on and the relay reports:
    the upstream sees NOTIFY and ORCPT, RET and ENVID as given."""
    d, up = relay_daemon(up_kw={"dsn": True})
    submit(d, "RET=HDRS ENVID=QQ+2B1", [("a@r.example", "NOTIFY=FAILURE,SUCCESS ORCPT=rfc822;a@r.example")], MSG)
    (m,) = up.wait_for(1)
    assert m.mail_dsn == ["RET=HDRS", "ENVID=QQ+2B1"]
    assert m.rcpt_dsn == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@r.example"]]
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.messages) == 1 and "dsn=relayed" not in d.log()


def test_a_crash_before_the_relayed_notice_was_queued(relay_daemon):
    """The state a crash leaves between the worker's R mark and the
    notice's commit, made by hand (as test_bounce's crashed_state for
    B): at the next start the notice goes once, R becomes D, the file
    goes, and the message itself is not sent again."""
    import os
    import shutil
    d, up = relay_daemon()
    up.tempfail_rcpt = True
    qid = submit(d, "", [("a@r.example", "NOTIFY=SUCCESS")], MSG)
    d.wait_log(r"status=deferred")
    d.stop()
    path = d.queue_path(qid)
    data = open(path, "rb").read()
    assert b"\nrcpt Q <a@r.example> notify=SUCCESS\n" in data
    data = data.replace(b"\nrcpt Q <a@r.example>", b"\nrcpt R <a@r.example>", 1)
    os.unlink(path)
    with open(path + ".B", "wb") as f:
        f.write(data)
    if os.geteuid() == 0:
        shutil.chown(path + ".B", "outbox")
    up.tempfail_rcpt = False
    d.start()
    (report,) = up.wait_for_reports(1)
    assert b"Action: relayed" in report.data and b"Final-Recipient: rfc822; a@r.example" in report.data
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.reports()) == 1 and up.originals() == []


@pytest.mark.parametrize("status,notify,action", [(b"R", "NOTIFY=SUCCESS", b"Action: relayed"),
                                                  (b"B", "", b"Action: failed")])
def test_a_due_report_whose_mark_was_lost_is_still_queued(relay_daemon, status, notify, action):
    """A B or R status with no .B name and nothing else pending (what a
    crash left between the status bytes and the rename in the order of
    before): the report goes once and the file goes after it, never
    removed as "done before a crash" (found by review)."""
    d, up = relay_daemon()
    up.tempfail_rcpt = True
    qid = submit(d, "", [("a@r.example", notify)], MSG)
    d.wait_log(r"status=deferred")
    d.stop()
    path = d.queue_path(qid)
    data = open(path, "rb").read()
    assert b"\nrcpt Q <a@r.example>" in data
    with open(path, "wb") as f:
        f.write(data.replace(b"\nrcpt Q <a@r.example>", b"\nrcpt " + status + b" <a@r.example>", 1))
    up.tempfail_rcpt = False
    d.start()
    (report,) = up.wait_for_reports(1)
    assert action in report.data and b"Final-Recipient: rfc822; a@r.example" in report.data
    d.wait_log(r"%s: a report was due and its mark lost: it is queued now" % qid)
    wait_queue_empty(d)
    time.sleep(1.5)
    assert len(up.reports()) == 1 and up.originals() == []


def test_ret_full_reports_take_turns_and_return_each_body_whole(relay_daemon):
    """Several RET=FULL failures at once: their reports are built one at
    a time (each holds its message in memory) and written to the queue in
    slices, and each returns its own message byte for byte (bodies over
    the slice, so each is written in several)."""
    d, up = relay_daemon()
    up.reject_rcpt = {"gone@r.example"}
    bodies = {}
    for k in range(3):
        body = b"".join(b"%d line %06d %s\r\n" % (k, i, b"z" * 50) for i in range(6000))   # ~400 KB
        msg = b"From: app@sender.example\r\nSubject: big %d\r\n\r\n" % k + body
        bodies[submit(d, "RET=FULL", [("gone@r.example", "")], msg)] = msg
    reports = up.wait_for_reports(3, timeout=60)
    got = {}
    for r in reports:
        qid = re.search(rb"X-Outbox-Queue-ID: ([0-9A-F]{16})", r.data).group(1).decode()
        got[qid] = raw_last_part(r)
    assert sorted(got) == sorted(bodies)
    for qid, part in got.items():
        head, whole = part.split(b"\r\n\r\n", 1)
        assert b"Content-Type: message/rfc822" in head
        assert whole.endswith(bodies[qid]), qid          # below our Received: line, byte for byte
    wait_queue_empty(d)


def test_the_postmaster_gets_no_copy_of_a_returned_body(relay_daemon):
    """RET=FULL is the sender's wish for the body: the report that
    returns it goes to the sender only; a failure report without the
    body still goes to the postmaster too (found by review)."""
    d, up = relay_daemon(extra={"address": {"postmaster": "pm@admin.example"}})
    up.reject_rcpt = {"gone@r.example"}
    submit(d, "RET=FULL", [("gone@r.example", "")], MSG)
    (report,) = up.wait_for_reports(1)
    assert report.rcpt_tos == [SENDER] and b"line one" in report.data
    submit(d, "RET=HDRS ENVID=two", [("gone@r.example", "")], MSG)   # (an ENVID: alone, not in a summary)
    reports = up.wait_for_reports(2)
    assert sorted(reports[1].rcpt_tos) == sorted([SENDER, "pm@admin.example"])
    assert b"line one" not in reports[1].data


@pytest.mark.parametrize("given,canonical,relayed", [
    ("NEVER", "NEVER", False),
    ("SUCCESS", "SUCCESS", True),
    ("FAILURE", "FAILURE", False),
    ("DELAY", "DELAY", False),
    ("delay,success", "SUCCESS,DELAY", True),
    ("FAILURE,DELAY,SUCCESS", "SUCCESS,FAILURE,DELAY", True),
    ("", None, False),
])
@pytest.mark.parametrize("dsn", [False, True])
def test_each_notify_through_a_relay_with_and_without_dsn(relay_daemon, given, canonical, relayed, dsn):
    """Each NOTIFY for a recipient the relay takes: with DSN it goes
    upstream (keywords in RFC 3461's order) and outbox says nothing;
    without DSN nothing goes upstream, and a "relayed" notice comes back
    exactly when SUCCESS was asked."""
    d, up = relay_daemon(up_kw={"dsn": dsn})
    submit(d, "", [("a@r.example", "NOTIFY=" + given if given else "")], MSG)
    (m,) = up.wait_for_originals(1)
    if dsn:
        assert m.rcpt_dsn == [["NOTIFY=" + canonical] if canonical else []]
    else:
        assert not [o for o in m.mail_options if "NOTIFY" in o.upper()]
    wait_queue_empty(d)
    if relayed and not dsn:
        (report,) = up.wait_for_reports(1)
        assert b"Action: relayed\r\nStatus: 2.0.0\r\n" in report.data
    else:
        time.sleep(1)
        assert up.reports() == []
