"""Delivery with CHUNKING (RFC 3030): an upstream that offers it gets
MAIL, RCPT..., BDAT <n> LAST and the octets, several messages in one
write.  Assertions are on what the aiosmtpd upstream (taught BDAT by
upstream.py) received: envelope, bytes, and the raw dialogue."""

import re
import time

from test_delivery import send, wait_log, wait_queue_empty


def chunking_daemon(relay_daemon, up_kw=None, relay=None, **kw):
    up_kw = dict(up_kw or {}, chunking=True)
    extra = kw.pop("extra", {})
    extra.setdefault("log", {"level": "debug"})
    return relay_daemon(up_kw=up_kw, relay=relay, extra=extra, **kw)


def bdat_batches(d, n, timeout=10):
    """[(messages, batches)] of the workers' "N messages in M BDAT
    batches" lines, once they count n messages: a worker logs its line
    after its last message is finished, so maybe after that message's
    file is gone (on a loaded machine it was not there yet)."""
    deadline = time.time() + timeout
    while True:
        got = [tuple(map(int, x)) for x in re.findall(r"(\d+) messages in (\d+) BDAT batches", d.log())]
        if sum(m for m, _ in got) >= n or time.time() > deadline:
            return got
        time.sleep(0.05)


def raw_of(up):
    return b"".join(bytes(c.raw) for c in up.sessions())


def hold_first_then_queue(d, up, rcpts):
    """Deliver rcpts[0] slowly, queue the rest meanwhile, so that they go
    out together in the worker's next batch."""
    up.data_delay = 0.8
    send(d, [rcpts[0]], b"Subject: first\n\nfirst\n")
    deadline = time.time() + 10
    while up.data_ends == 0 and time.time() < deadline:
        time.sleep(0.01)
    for i, r in enumerate(rcpts[1:]):
        send(d, [r] if isinstance(r, str) else r, b"Subject: m%d\n\nbody %d\n" % (i, i))
    up.data_delay = 0


def test_content_arrives_as_meant_by_bdat(relay_daemon):
    d, up = chunking_daemon(relay_daemon)
    body = (b"Subject: dots\n\n"
            b".starts with a dot\n"
            b"..two dots\n"
            b"caf\xc3\xa9 8-bit\n"
            b"bare cr\rline\n"
            b".\n"
            b"MAIL FROM:<evil@x>\n"
            b"last")
    send(d, ["a@r.example"], body, args=["-i"])
    m = up.wait_for(1)[0]
    head, sent = m.data.split(b"\r\n\r\n", 1)
    assert b"\r\nSubject: dots\r\n" in head + b"\r\n"
    assert sent == (b".starts with a dot\r\n..two dots\r\n"
                    b"caf\xc3\xa9 8-bit\r\nbare cr\r\nline\r\n.\r\nMAIL FROM:<evil@x>\r\nlast\r\n")
    assert "BODY=8BITMIME" in m.mail_options
    raw = raw_of(up)
    # no DATA, no dot-stuffing, and the BDAT size is the exact octet count
    assert b"\r\nDATA\r\n" not in raw
    assert up.bdat_commands == [(len(m.data), True)]
    assert b"BDAT %d LAST\r\n" % len(m.data) in raw
    assert b"\r\n.starts with a dot\r\n..two dots\r\n" in raw
    assert raw.count(b"MAIL FROM:") == 2    # ours, and the text in the octets
    wait_queue_empty(d)


def test_queued_messages_go_in_one_batch(relay_daemon):
    d, up = chunking_daemon(relay_daemon, relay={"workers": "1"})
    rcpts = ["r%d@r.example" % i for i in range(8)]
    hold_first_then_queue(d, up, rcpts)
    msgs = up.wait_for(8)
    assert sorted(m.rcpt_tos[0] for m in msgs) == sorted(rcpts)
    for m in msgs[1:]:
        n = int(re.search(rb"Subject: m(\d+)", m.data).group(1))
        assert m.rcpt_tos == [rcpts[n + 1]] and m.data.endswith(b"\r\nbody %d\r\n" % n)
    assert len(up.sessions()) == 1
    wait_queue_empty(d)
    got = bdat_batches(d, 8)
    assert sum(n for n, _ in got) == 8
    assert sum(b for _, b in got) <= 3, got        # the 7 queued ones went together
    # pipelined: one read of the upstream's held several whole messages
    reads = up.sessions()[0].reads
    assert max(r.count(b"MAIL FROM:") for r in reads) >= 5
    assert raw_of(up).count(b"BDAT ") == 8


def test_refused_recipients_inside_a_batch(relay_daemon):
    d, up = chunking_daemon(relay_daemon, relay={"workers": "1"},
                            extra={"queue": {"report_interval": "0"}})   # each report at once
    up.reject_rcpt = {"bad@r.example", "bad2@r.example"}
    hold_first_then_queue(d, up, ["first@r.example", ["bad@r.example"],
                                  ["good@r.example", "bad2@r.example"], ["after@r.example"]])
    msgs = up.wait_for_originals(3)
    assert [m.rcpt_tos for m in msgs] == [["first@r.example"], ["good@r.example"], ["after@r.example"]]
    assert msgs[1].data.endswith(b"\r\nbody 1\r\n") and msgs[2].data.endswith(b"\r\nbody 2\r\n")
    wait_log(d, r"to=<bad@r.example> .* status=bounced \(550 5\.1\.1")
    wait_log(d, r"to=<bad2@r.example> .* status=bounced \(550 5\.1\.1")
    wait_log(d, r"to=<good@r.example> .* status=sent")
    wait_queue_empty(d)
    # the message nobody took: its BDAT was refused and its octets skipped
    assert len(up.wait_for_reports(2)) == 2      # one report for each failed message
    time.sleep(1.2)
    assert len(up.originals()) == 3
    # the message nobody took: its BDAT was refused and its octets skipped
    # (the two reports came by BDAT too)
    assert len(up.bdat_commands) == 4 + 2


def test_tempfail_at_bdat_defers_then_delivers_once(relay_daemon):
    d, up = chunking_daemon(relay_daemon)
    up.tempfail_first = 1
    send(d, ["a@r.example"])
    m = up.wait_for(1, timeout=30)[0]
    assert m.rcpt_tos == ["a@r.example"]
    wait_log(d, r"status=deferred \(451 4\.7\.1 Try again later\)")
    wait_log(d, r"tries=2 status=sent")
    wait_queue_empty(d)
    assert len(up.messages) == 1


def test_large_message_in_several_chunks(relay_daemon):
    d, up = chunking_daemon(relay_daemon)
    line = b"0123456789" * 7 + b"\n"
    body = b"Subject: big\n\n" + line * 9000             # about 640 KB
    send(d, ["a@r.example"], body)
    m = up.wait_for(1, timeout=30)[0]
    assert m.data.split(b"\r\n\r\n", 1)[1] == (line * 9000).replace(b"\n", b"\r\n")
    sizes = up.bdat_commands
    assert len(sizes) >= 3 and [last for _, last in sizes] == [False] * (len(sizes) - 1) + [True]
    assert sum(n for n, _ in sizes) == len(m.data)
    wait_queue_empty(d)


def test_chunking_can_be_turned_off(relay_daemon):
    d, up = chunking_daemon(relay_daemon, relay={"chunking": "no"})
    send(d, ["a@r.example"])
    up.wait_for(1)
    raw = raw_of(up)
    assert b"\r\nDATA\r\n" in raw and b"BDAT" not in raw and up.bdat_commands == []


def test_batches_stop_growing_at_a_megabyte(relay_daemon):
    d, up = chunking_daemon(relay_daemon, relay={"workers": "1"})
    big = b"Subject: big\n\n" + (b"y" * 70 + b"\n") * 8500    # about 600 KB each
    up.data_delay = 0.8
    send(d, ["first@r.example"], b"Subject: first\n\nfirst\n")
    deadline = time.time() + 10
    while up.data_ends == 0 and time.time() < deadline:
        time.sleep(0.01)
    for i in range(5):
        send(d, ["big%d@r.example" % i], big)
    up.data_delay = 0
    msgs = up.wait_for(6, timeout=30)
    assert sorted(m.rcpt_tos[0] for m in msgs[1:]) == ["big%d@r.example" % i for i in range(5)]
    wait_queue_empty(d)
    got = bdat_batches(d, 6)
    assert sum(n for n, _ in got) == 6
    # a batch takes no more once it holds 1 MB: the 5 queued ones (3 MB)
    # go 2 + 2 + 1, after the first message's own batch
    assert sum(b for _, b in got) >= 4, got
