"""The submission server under bad input: every refusal is a clear 4xx/5xx,
the session goes on, and nothing malformed reaches the queue."""

import pytest

from test_submission import queued_id


def good_transaction(c, tag=b"ok"):
    """A normal message on an existing session; returns its queue ID."""
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    code, text = c.cmd(b"Subject: " + tag + b"\r\n\r\nbody\r\n.")
    assert code == 250
    return queued_id(text)


def test_sequence_errors_and_unknown_commands(daemon):
    c = daemon.raw()
    assert c.greeting[0] == 220
    assert c.cmd(b"MAIL FROM:<a@s.example>")[0] == 503       # before EHLO
    assert c.cmd(b"EHLO")[0] == 501                          # no argument
    assert c.cmd(b"EHLO client.example")[0] == 250
    assert c.cmd(b"RCPT TO:<b@r.example>")[0] == 503         # before MAIL
    assert c.cmd(b"DATA")[0] == 503                          # before MAIL
    assert c.cmd(b"FOO bar")[0] == 500
    assert c.cmd(b"STARTTLS")[0] == 502
    assert c.cmd(b"AUTH PLAIN AGFAYg==")[0] == 502
    assert c.cmd(b"VRFY root")[0] == 252
    assert c.cmd(b"HELP")[0] == 214
    assert c.cmd(b"NOOP")[0] == 250
    assert c.cmd(b"MAIL FROM:<a@s.example>")[0] == 250
    assert c.cmd(b"MAIL FROM:<a@s.example>")[0] == 503       # nested
    assert c.cmd(b"DATA")[0] == 554                          # no recipients
    assert c.cmd(b"RSET")[0] == 250
    good_transaction(c)
    assert c.cmd(b"QUIT")[0] == 221
    assert c.closed()


@pytest.mark.parametrize("line,code", [
    (b"MAIL FROM:<not an address>", 501),
    (b"MAIL FROM:<a@s.example", 501),
    (b"MAIL FROM:<a@s.example> BOGUS=1", 555),
    (b"MAIL FROM:<a@s.example> SIZE=abc", 501),
    (b"MAIL FROM:<a@s.example> BODY=9BIT", 501),
    (b"MAIL FROM:<a@s.example> SIZE=999999999999", 552),
    (b"MAIL TO:<a@s.example>", 501),
    (b"MAIL FROM:<a\x01b@s.example>", 501),
    (b"MAIL FROM:<a@s.example>\x00junk", 500),
])
def test_bad_mail_commands(daemon, line, code):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    assert c.cmd(line)[0] == code
    good_transaction(c)


def test_bad_rcpt_commands(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    c.cmd(b"MAIL FROM:<a@s.example>")
    assert c.cmd(b"RCPT TO:<>")[0] == 501
    assert c.cmd(b"RCPT TO:<a b@r.example>")[0] == 501
    assert c.cmd(b"RCPT TO:<x@r.example> XFOO=1")[0] == 555  # (NOTIFY is taken: test_dsn_intake.py)
    assert c.cmd(b"RCPT TO:<x@r.example>\r\nQUIT\r\nRCPT TO:<y@r.example>")[0] == 250
    assert c.reply()[0] == 221
    assert c.closed()
    assert daemon.queue_ids() == []


def test_command_line_too_long_then_session_goes_on(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    assert c.cmd(b"NOOP " + b"x" * 5000)[0] == 500
    assert c.cmd(b"MAIL FROM:<" + b"a" * 3000 + b"@s.example>")[0] == 500
    assert c.cmd(b"NOOP")[0] == 250
    good_transaction(c)


def test_size_limit_enforced_while_reading(make_daemon):
    d = make_daemon(extra={"queue": {"max_message_size": "10K"}})
    c = d.raw()
    code, text = c.cmd(b"EHLO x")
    assert b"SIZE 10240" in text
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send((b"x" * 999 + b"\r\n") * 30)
    assert c.cmd(b".")[0] == 552
    assert d.queue_ids() == []
    assert [n for n in __import__("os").listdir(d.spool + "/tmp")] == []
    qid = good_transaction(c)   # the session goes on
    assert d.queue_ids() == [qid]


def test_text_line_limit(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: long\r\n\r\n" + b"y" * 70000 + b"\r\n")
    code, text = c.cmd(b".")
    assert code == 552 and b"line too long" in text
    # 5000-octet lines are accepted (RFC 5321 lines are dealt with at relay time)
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n")
    code, text = c.cmd(b".")
    assert code == 250
    _, msg = daemon.parse_queue_file(queued_id(text))
    assert b"z" * 5000 + b"\r\n" in msg


def test_recipient_limit(make_daemon):
    d = make_daemon(extra={"queue": {"max_recipients": "3"}})
    c = d.raw()
    c.cmd(b"EHLO x")
    c.cmd(b"MAIL FROM:<a@s.example>")
    for i in range(3):
        assert c.cmd(b"RCPT TO:<r%d@r.example>" % i)[0] == 250
    assert c.cmd(b"RCPT TO:<r1@r.example>")[0] == 250   # a duplicate costs nothing
    assert c.cmd(b"RCPT TO:<r9@r.example>")[0] == 452
    code, _ = c.cmd(b"DATA")
    assert code == 354
    code, text = c.cmd(b"Subject: x\r\n\r\ny\r\n.")
    env, _ = d.parse_queue_file(queued_id(text))
    assert [a for _, a in env["rcpt"]] == ["r0@r.example", "r1@r.example", "r2@r.example"]


def test_too_many_errors_disconnects(daemon):
    c = daemon.raw()
    for _ in range(19):
        assert c.cmd(b"BOGUS")[0] == 500
    code, text = c.cmd(b"BOGUS")
    assert code == 500
    assert c.reply()[0] == 421
    assert c.closed()


def test_idle_timeout(make_daemon):
    d = make_daemon(extra={"listen": {"idle_timeout": "1s"}})
    c = d.raw()
    c.cmd(b"EHLO x")
    code, text = c.reply()
    assert code == 421 and b"timeout" in text
    assert c.closed()
    c2 = d.raw()   # the daemon is fine
    assert c2.cmd(b"EHLO y")[0] == 250
    good_transaction(c2)
    assert len(d.queue_ids()) == 1


@pytest.mark.parametrize("smuggle", [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\n.\r",
])
def test_no_smuggling_through_bare_line_endings(daemon, smuggle):
    """CVE-2023-51764: an end of data that only another MTA would see must
    stay message content here, and the smuggled commands are not run."""
    c = daemon.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: outer\r\n\r\nouter body" + smuggle +
           b"MAIL FROM:<evil@s.example>\r\nRCPT TO:<victim@r.example>\r\nDATA\r\n"
           b"Subject: smuggled\r\n\r\nsmuggled\r\n.\r\n")
    code, text = c.reply()
    assert code == 250          # one message, ended at the real <CRLF>.<CRLF>
    assert c.cmd(b"NOOP")[0] == 250
    ids = daemon.queue_ids()
    assert len(ids) == 1
    env, msg = daemon.parse_queue_file(ids[0])
    assert env["from"] == "a@s.example" and env["rcpt"] == [("Q", "b@r.example")]
    assert b"MAIL FROM:<evil@s.example>" in msg
    # stored with CRLF line endings only
    assert b"\r" not in msg.replace(b"\r\n", b"")
    assert b"\n" not in msg.replace(b"\r\n", b"")


def test_bare_lf_and_nul_normalized(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    code, text = c.cmd(b"Subject: lf\nX: y\r\n\r\nl1\nl2\rl3\x00nul\r\n..dot\r\n.")
    assert code == 250
    _, msg = daemon.parse_queue_file(queued_id(text))
    assert msg.endswith(b"Subject: lf\r\nX: y\r\n\r\nl1\r\nl2\r\nl3nul\r\n.dot\r\n")


def test_client_vanishing_mid_data_leaves_nothing(daemon):
    c = daemon.raw()
    c.cmd(b"EHLO x")
    c.send(b"MAIL FROM:<a@s.example>\r\nRCPT TO:<b@r.example>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(b"Subject: cut\r\n\r\npartial" * 1000)
    c.close()
    daemon.wait_log("lost connection after DATA")
    assert daemon.queue_ids() == []
    assert __import__("os").listdir(daemon.spool + "/tmp") == []


def test_longest_qualified_address_is_taken_and_queued(make_daemon):
    """The longest domain a configuration line holds (189 octets) and the
    longest local part (64) qualify to exactly 254 octets: taken at RCPT
    and queued (every address is checked again once qualified, so one
    that came out longer would get 553 at RCPT, never 451 at DATA)."""
    domain = ".".join(["d" * 60] * 3) + ".abcdef"     # 189 octets
    d = make_daemon(extra={"address": {"domain": domain}})
    local = "l" * 64
    c = d.raw()
    c.cmd(b"EHLO x")
    assert c.cmd(b"MAIL FROM:<%s>" % local.encode())[0] == 250
    assert c.cmd(b"RCPT TO:<%s>" % local.encode())[0] == 250
    assert c.cmd(b"RCPT TO:<%s>" % (b"m" * 65))[0] == 501     # over 64: a syntax error
    assert c.cmd(b"DATA")[0] == 354
    assert c.cmd(b"Subject: x\r\n\r\nx\r\n.")[0] == 250
    env, _ = d.parse_queue_file(d.queue_ids()[0])
    assert [a for _, a in env["rcpt"]] == [local + "@" + domain]
    assert len(env["rcpt"][0][1]) == 254 and env["from"] == local + "@" + domain
