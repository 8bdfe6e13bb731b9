"""A provider's whole reply (issue 21, point 8): every line of a
multi-line reply reaches the log line (Exim's queue ID is on the last
one), `outbox queue`, a report's Diagnostic-Code, and a refused login's
log line with what to do about it (the hint table, point 4).  The
upstream answers with the multi-line replies real servers send
(upstream.py mail_reply, rcpt_reply, data_reply, auth_reply)."""

import email
import json
import re

import pytest

from test_delivery import send, wait_queue_empty
from test_oauth2 import oauth2  # noqa: F401 (a fixture)

EXIM_250 = "250-472 byte chunk, total 472\r\n250 OK id=1abc-000123-XY"
GMAIL_450 = ("450-4.2.1 The user you are trying to contact is receiving mail too quickly. Please\r\n"
             "450-4.2.1 resend your message at a later time.\r\n"
             "450 4.2.1 https://support.google.com/mail/?p=ReceivingRate x1 - gsmtp")
GMAIL_450_JOINED = ("450 4.2.1 The user you are trying to contact is receiving mail too quickly. Please "
                    "resend your message at a later time. "
                    "https://support.google.com/mail/?p=ReceivingRate x1 - gsmtp")
GMAIL_550 = ("550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
             "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
             "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser x2 - gsmtp")
GMAIL_550_JOINED = ("550 5.1.1 The email account that you tried to reach does not exist. Please try "
                    "double-checking the recipient's email address for typos or unnecessary spaces. "
                    "https://support.google.com/mail/?p=NoSuchUser x2 - gsmtp")


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
def test_the_servers_queue_id_on_the_last_line_is_logged(relay_daemon, chunking):
    d, up = relay_daemon(up_kw={"chunking": chunking})
    up.data_reply = EXIM_250
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.rcpt_tos == ["a@r.example"]
    assert bool(up.bdat_commands) == chunking
    d.wait_log(r"to=<a@r\.example> relay=localhost\[.* status=sent "
               r"\(250 472 byte chunk, total 472 OK id=1abc-000123-XY\)")
    wait_queue_empty(d)


def test_outbox_queue_shows_the_whole_deferral(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"retry_min": "1h", "retry_max": "2h"}})
    up.rcpt_reply = {"a@r.example": GMAIL_450}
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> .* status=deferred \(%s\)" % re.escape(GMAIL_450_JOINED))
    listing = d.outbox("queue")
    assert listing.returncode == 0, listing.stderr
    assert "(%s)" % GMAIL_450_JOINED in [line.strip() for line in listing.stdout.splitlines()]
    (m,) = [json.loads(x) for x in d.outbox("queue", "--json").stdout.splitlines()]
    assert [r["last_reply"] for r in m["recipients"]] == [GMAIL_450_JOINED]


def test_outbox_queue_shows_a_long_deferral_whole(relay_daemon):
    """A reply of 900 octets (under the 1000 kept) reaches outbox queue
    whole (before: SPOOL/defer/ kept its first 600)."""
    d, up = relay_daemon(extra={"queue": {"retry_min": "1h", "retry_max": "2h"}})
    long = "450 4.2.1 " + " ".join("word%03d" % i for i in range(111))
    assert 880 < len(long) < 1000
    up.rcpt_reply = {"a@r.example": long}
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> .* status=deferred")
    (m,) = [json.loads(x) for x in d.outbox("queue", "--json").stdout.splitlines()]
    assert [r["last_reply"] for r in m["recipients"]] == [long]


def test_a_reports_diagnostic_code_has_every_line(relay_daemon):
    d, up = relay_daemon()
    up.rcpt_reply = {"gone@r.example": GMAIL_550}
    send(d, ["gone@r.example"])
    d.wait_log(r"to=<gone@r\.example> .* status=bounced \(%s\)" % re.escape(GMAIL_550_JOINED))
    (report,) = up.wait_for_reports(1)
    status = email.message_from_bytes(report.data).get_payload()[1]
    fields = status.get_payload()[1]         # the recipient's block
    assert fields["Diagnostic-Code"] == "smtp; " + GMAIL_550_JOINED
    assert fields["Status"] == "5.1.1"
    assert b"\r\nDiagnostic-Code: smtp; " + GMAIL_550_JOINED.encode() + b"\r\n" in report.data
    wait_queue_empty(d)


@pytest.mark.parametrize("reply,joined,hint", [
    ("535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
     "535 5.7.8  https://support.google.com/mail/?p=BadCredentials x3 - gsmtp",
     "535 5.7.8 Username and Password not accepted. For more information, go to "
     "https://support.google.com/mail/?p=BadCredentials x3 - gsmtp",
     "check user and password_file"),
    ("535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [X.PROD.OUTLOOK.COM]",
     "535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [X.PROD.OUTLOOK.COM]",
     "switch to OAuth2: outbox setup microsoft365"),
], ids=["gmail-535", "microsoft-5.7.139"])
def test_a_refused_login_says_the_whole_reply_and_what_to_do(relay_daemon, reply, joined, hint):
    d, up = relay_daemon(extra={"queue": {"retry_min": "1h", "retry_max": "2h"}})
    up.auth_reply = reply
    send(d, ["a@r.example"])
    said = "%s; what to do: %s" % (joined, hint)
    d.wait_log(r"relay localhost\[127\.0\.0\.1\]:\d+: %s\n" % re.escape(said))
    d.wait_log(r"to=<a@r\.example> .* status=deferred \(%s\)" % re.escape(said))
    assert up.auth_attempts and not any(ok for _, _, ok in up.auth_attempts)
    listing = [line.strip() for line in d.outbox("queue").stdout.splitlines()]
    assert "(%s)" % said in listing
    assert up.messages == [] and "status=bounced" not in d.log()


class _NoToken(set):
    """The upstream's valid tokens, kept empty: every token is refused."""

    def add(self, token):
        pass


def test_a_refused_token_says_the_servers_error_and_what_to_do(oauth2):  # noqa: F811
    d, up, srv, _ = oauth2()
    up.tokens = _NoToken()
    up.token_error = '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
    send(d, ["a@r.example"])
    said = ('535 5.7.8 Authentication credentials invalid (token error: {"status":"400","schemes":'
            '"Bearer","scope":"https://mail.google.com/"}); what to do: the access token was refused: '
            'outbox oauth2 login')
    d.wait_log(r"relay localhost\[127\.0\.0\.1\]:\d+: %s\n" % re.escape(said))
    d.wait_log(r"to=<a@r\.example> .* status=deferred \(%s\)" % re.escape(said))
    assert len(up.tokens_seen) >= 2                  # the cached token, then a fresh one
    assert up.messages == [] and "status=bounced" not in d.log()


@pytest.mark.parametrize("at", ["MAIL", "RCPT"])
def test_530_authentication_required_defers_and_never_bounces(relay_daemon, at):
    """A relay that wants a login we did not give answers 530 5.7.0 to
    MAIL or RCPT (RFC 4954 6): our configuration's fault, never the
    message's -- AUTH trouble defers, with the hint, and the mail goes
    once the relay takes it (it bounced as a 5xx before)."""
    d, up = relay_daemon(extra={"queue": {"retry_min": "1s", "retry_max": "2s"}})
    reply = "530 5.7.0 Authentication Required"
    if at == "MAIL":
        up.mail_reply = reply
    else:
        up.rcpt_reply["a@r.example"] = reply
    send(d, ["a@r.example"])
    d.wait_log(r"to=<a@r\.example> .* status=deferred \(.*530 5\.7\.0 Authentication Required")
    up.mail_reply = None
    up.rcpt_reply.clear()
    (m,) = up.wait_for(1, timeout=30)
    assert m.rcpt_tos == ["a@r.example"]
    wait_queue_empty(d)
    assert "status=bounced" not in d.log() and up.reports() == []
