"""Transactions that end early: a session is reset (RSET) or closed before
it carries the next message, and our own protocol errors never bounce
mail.  Each case runs against an upstream with PIPELINING, one without,
and one with CHUNKING (BDAT); every assertion is on what the upstream
received and on the log."""

import re
import time

import pytest

from test_delivery import RawServer, send, wait_log, wait_queue_empty

MODES = {
    "pipelining": {"pipelining": True},
    "one-by-one": {"pipelining": False},
    "chunking": {"pipelining": True, "chunking": True},
}


def queue_behind_held_session(d, up, n, body=b"x\n"):
    """n messages, each to its own recipient, all queued while the first
    session waits for its EHLO reply: released, they go on one session."""
    up.hold = True
    rcpts = ["r%d@r.example" % i for i in range(n)]
    for i, r in enumerate(rcpts):
        send(d, [r], b"Subject: m%d\n\n" % i + body)
    deadline = time.time() + 10
    while not up.connections and time.time() < deadline:
        time.sleep(0.02)
    up.hold = False
    return rcpts


def assert_each_delivered_once_to_its_own(up, rcpts, body=b"x\r\n", missing=()):
    """Message m<i> was addressed to rcpts[i]; every one but those in
    missing arrives once, to its own recipient only, whole."""
    want = {i: r for i, r in enumerate(rcpts) if i not in missing}
    up.wait_for_originals(len(want))
    time.sleep(0.5)
    assert len(up.originals()) == len(want), up.messages
    got = {}
    for m in up.originals():
        i = int(re.search(rb"Subject: m(\d+)", m.data).group(1))
        assert m.rcpt_tos == [rcpts[i]], (i, m.rcpt_tos)   # nobody else's mail
        assert m.data.endswith(b"\r\n\r\n" + body)          # never empty or cut
        got[i] = rcpts[i]
    assert got == want


@pytest.mark.parametrize("mode", MODES)
def test_every_recipient_tempfailed_bounces_nothing(relay_daemon, mode):
    """Greylisting: 451 to every RCPT.  The server's transaction stays open
    (MAIL was taken); the next message must not meet "503 nested MAIL"."""
    d, up = relay_daemon(up_kw=MODES[mode], relay={"workers": "1"})
    up.tempfail_rcpt = True
    rcpts = queue_behind_held_session(d, up, 6)
    wait_log(d, r"status=deferred \(451 4\.7\.1", count=12)    # every message, twice
    assert "bounced" not in d.log()
    assert "nested" not in d.log()
    up.tempfail_rcpt = False
    assert_each_delivered_once_to_its_own(up, rcpts)
    wait_queue_empty(d)
    assert "bounced" not in d.log()


@pytest.mark.parametrize("mode", ["pipelining", "one-by-one"])
@pytest.mark.parametrize("refusal,bounced", [("451 4.3.0 DATA refused, try later", False),
                                             ("554 5.7.1 DATA refused", True)])
def test_refused_data_command_costs_no_other_message(relay_daemon, mode, refusal, bounced):
    """The second message's DATA (pipelined behind the first one's ".") is
    refused with recipients accepted; the transaction stays open on the
    server.  Nothing goes to the wrong recipient, no empty message is
    stored, a 554 fails only that message, a 451 delivers it later once."""
    d, up = relay_daemon(up_kw=MODES[mode], relay={"workers": "1"})
    up.refuse_data = [None, refusal]
    rcpts = queue_behind_held_session(d, up, 5)
    if bounced:
        wait_log(d, r"to=<r1@r\.example> .* status=bounced \(554 5\.7\.1 DATA refused\)")
        assert_each_delivered_once_to_its_own(up, rcpts, missing={1})
        wait_queue_empty(d)
        assert up.data_refused == [["r1@r.example"]]
        assert d.log().count("status=bounced") == 1
    else:
        wait_log(d, r"to=<r1@r\.example> .* status=deferred \(451 4\.3\.0 DATA refused")
        assert_each_delivered_once_to_its_own(up, rcpts)
        wait_queue_empty(d)
        assert "bounced" not in d.log()


def test_refused_bdat_chunk_defers_and_resets(relay_daemon):
    """A refused first chunk of a two-chunk message: that message is
    deferred and later delivered whole; the messages batched behind it
    (each after an RSET) are delivered once."""
    big = (b"y" * 99 + b"\n") * 4000      # 400 KB: two BDAT chunks
    d, up = relay_daemon(up_kw=MODES["chunking"], relay={"workers": "1"})
    up.refuse_bdat = ["451 4.3.0 chunk refused"]
    rcpts = queue_behind_held_session(d, up, 4, body=big)
    wait_log(d, r"to=<r0@r\.example> .* status=deferred \(451 4\.3\.0 chunk refused")
    assert_each_delivered_once_to_its_own(up, rcpts, body=big.replace(b"\n", b"\r\n"))
    wait_queue_empty(d)
    assert "bounced" not in d.log()
    assert any(not last for _, last in up.bdat_commands)     # it really was chunked


class ProtocolErrorServer(RawServer):
    """Answers `reply` to the first `at` command (MAIL or RCPT) it gets,
    250 to the rest, and records every message it was given."""

    def __init__(self, at, reply, pipelining):
        self.at, self.reply, self.pipelining = at, reply, pipelining
        self.messages = []
        self.refused = False
        self.start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 strict.test ESMTP\r\n")
        for line in f:
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                conn.sendall(b"250-strict.test\r\n" + (b"250-PIPELINING\r\n" if self.pipelining
                                                         else b"") + b"250 8BITMIME\r\n")
            elif cmd == self.at and not self.refused:
                self.refused = True
                conn.sendall(self.reply + b"\r\n")
            elif cmd == b"DATA":
                conn.sendall(b"354 go\r\n")
                body = self.read_data(f)
                if body is None:    # closed before the ".": no message
                    return
                self.messages.append(body)
                conn.sendall(b"250 2.0.0 queued\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("at,reply", [
    (b"MAIL", b"503 5.5.1 Error: nested MAIL command"),
    (b"RCPT", b"503 5.5.1 Error: need MAIL command"),
    (b"RCPT", b"501 5.5.4 Syntax error in parameters"),
    (b"MAIL", b"500 5.5.2 Error: bad syntax"),
])
def test_our_protocol_error_defers_never_bounces(make_daemon, at, reply, pipelining):
    srv = ProtocolErrorServer(at, reply, pipelining)
    try:
        d = make_daemon(extra={"relay": {"host": "127.0.0.1", "port": str(srv.port),
                                         "tls": "none", "timeout": "5s"},
                               "queue": {"retry_min": "1s", "retry_max": "2s"}})
        send(d, ["a@r.example"])
        wait_log(d, r"status=deferred \(%s.*: %s" % (
            "MAIL|RCPT" if at == b"MAIL" else "RCPT", re.escape(reply.decode())))
        # the session was closed and the retry, on a new one, delivers
        wait_log(d, r"to=<a@r\.example> .* status=sent")
        assert "bounced" not in d.log()
        assert len(srv.messages) == 1 and srv.messages[0].endswith(b"\r\n\r\nhello\r\n")
    finally:
        srv.close()
