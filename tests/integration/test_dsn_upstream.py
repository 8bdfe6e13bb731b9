"""DSN towards the relay (RFC 3461, issue 23 point 2) and recipients a
relay postpones with 452 (RFC 5321 4.5.3.1.10, issue 23 point 5): every
assertion is on what the upstream received."""

import time

import pytest

from test_delivery import send, wait_queue_empty

def submit_with_dsn(d):
    s = d.smtp()
    s.ehlo("client.example")
    code, text = s.mail("a@sender.example", ["RET=HDRS", "ENVID=xyz"])
    assert code == 250, text
    code, text = s.rcpt("b@r.example", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@x"])
    assert code == 250, text
    code, text = s.rcpt("c@r.example", ["NOTIFY=NEVER"])
    assert code == 250, text
    code, text = s.data(b"Subject: dsn\r\n\r\nbody\r\n")
    assert code == 250, text
    s.quit()


@pytest.mark.parametrize("chunking", [False, True])
def test_dsn_parameters_go_upstream(relay_daemon, chunking):
    d, up = relay_daemon(up_kw={"dsn": True, "chunking": chunking})
    submit_with_dsn(d)
    m = up.wait_for(1)[0]
    assert m.mail_dsn == ["RET=HDRS", "ENVID=xyz"]
    assert m.rcpt_tos == ["b@r.example", "c@r.example"]
    assert m.rcpt_dsn == [["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@x"], ["NOTIFY=NEVER"]]


def test_no_dsn_parameters_to_a_relay_without_dsn(relay_daemon):
    d, up = relay_daemon()
    submit_with_dsn(d)
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["b@r.example", "c@r.example"]
    raw = bytes(up.connections[m.conn - 1].raw)
    for word in (b"RET=", b"ENVID=", b"NOTIFY=", b"ORCPT="):
        assert word not in raw.upper()


def test_dsn_relay_without_requests_gets_no_parameters(relay_daemon):
    """A relay that offers DSN, a message that asked for nothing: plain
    MAIL and RCPT, as before."""
    d, up = relay_daemon(up_kw={"dsn": True})
    send(d, ["b@r.example"])
    m = up.wait_for(1)[0]
    assert m.mail_dsn == [] and m.rcpt_dsn == [[]]
@pytest.mark.parametrize("mode", [{"pipelining": True}, {"pipelining": False},
                                  {"pipelining": True, "chunking": True}],
                         ids=["pipelining", "one-by-one", "chunking"])
def test_452_recipients_go_on_in_the_same_session(relay_daemon, mode):
    """150 recipients, a relay that takes 100 per message: the other 50
    go in a second transaction on the same session at once, not after
    retry_min; each recipient gets the message once."""
    d, up = relay_daemon(up_kw=dict(mode, max_rcpt=100),
                         extra={"queue": {"retry_min": "10m", "retry_max": "1h"}})
    rcpts = ["r%03d@r.example" % i for i in range(150)]
    t0 = time.time()
    send(d, rcpts, b"Subject: many\n\nto many\n")
    msgs = up.wait_for(2, timeout=15)
    assert time.time() - t0 < 10
    wait_queue_empty(d)
    assert len(up.messages) == 2
    assert [len(m.rcpt_tos) for m in up.messages] == [100, 50]
    assert sorted(r for m in msgs for r in m.rcpt_tos) == rcpts
    assert msgs[0].conn == msgs[1].conn
    assert msgs[0].data == msgs[1].data and msgs[0].data.endswith(b"\r\n\r\nto many\r\n")
    assert up.rcpt_452 == 50
    assert len(up.connections) == 1


def test_452_without_progress_waits(relay_daemon):
    """A relay that takes no recipient at all (452 to the first): the
    message waits for retry, no loop on the session."""
    d, up = relay_daemon(up_kw={"max_rcpt": 100},
                         extra={"queue": {"retry_min": "10m", "retry_max": "1h"}})
    up.rcpt_reply["a@r.example"] = "452 4.5.3 Too many recipients"
    send(d, ["a@r.example"])
    d.wait_log(r"status=deferred \(452 4\.5\.3")
    time.sleep(1)
    assert up.messages == []
    assert up.data_commands <= 1
    assert len(d.queue_ids()) == 1
