"""outbox send, the composer (SPEC "Composing"): text and images as
Gmail and Thunderbird show them, attachments typed by their content,
headers encoded, asserted on what the upstream received, parsed with
Python's email package."""

import email
import email.policy
import os
import subprocess
import zlib
import struct

import pytest

from conftest import OUTBOX
from test_delivery import wait_queue_empty


def png(path, w, h, rgb):
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
    return data


def content(part):
    """A text part's decoded text, with the wire's CRLF as LF."""
    return part.get_content().replace("\r\n", "\n")


def send(d, args, text):
    return subprocess.run(d.command(["send"] + args, None, None), input=text.encode(), capture_output=True,
                          timeout=60, env=dict(os.environ, OUTBOX_CONF=d.conf))


def test_text_and_images_arrive_as_gmail_shows_them(relay_daemon, workdir):
    d, up = relay_daemon()
    picture = png(os.path.join(workdir, "picture.png"), 40, 30, (200, 10, 10))
    chart = png(os.path.join(workdir, "chart.png"), 64, 16, (10, 10, 200))
    text = "Hallo Jörg,\n\nanbei die Zahlen – und ein Bild.\n" + "x" * 1200 + "\n"
    r = send(d, ["-s", "Grüße aus dem Büro", "-a", os.path.join(workdir, "picture.png"),
                 "-i", os.path.join(workdir, "chart.png"), "-c", "Anna Ärger <anna@r.example>",
                 "-b", "hidden@r.example", "Jörg Müller <joerg@r.example>"], text)
    assert r.returncode == 0, r.stderr
    (m,) = up.wait_for(1)
    assert sorted(m.rcpt_tos) == ["anna@r.example", "hidden@r.example", "joerg@r.example"]
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Subject"] == "Grüße aus dem Büro"
    assert str(msg["To"]) == "Jörg Müller <joerg@r.example>"
    assert str(msg["Cc"]) == "Anna Ärger <anna@r.example>"
    assert "Bcc" not in msg and b"hidden@r.example" not in m.data
    assert msg["Date"] and msg["Message-ID"] and msg["From"]
    assert msg.get_content_type() == "multipart/mixed"
    alt, att = msg.get_payload()
    assert alt.get_content_type() == "multipart/alternative"
    plain, related = alt.get_payload()
    assert plain.get_content_type() == "text/plain" and plain.get_content_charset() == "utf-8"
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(plain) == text
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert html.get_content_type() == "text/html"
    cid = image["Content-ID"].strip("<>")
    assert 'src="cid:%s"' % cid in content(html) and "Hallo Jörg" in content(html)
    assert image.get_content_type() == "image/png" and image.get_content_disposition() == "inline"
    assert image.get_content() == chart
    assert att.get_content_type() == "image/png" and att.get_content_disposition() == "attachment"
    assert att.get_filename() == "picture.png" and att.get_content() == picture
    for line in m.data.split(b"\r\n"):               # base64 and QP keep to 76 columns
        assert len(line) <= 998
    body_lines = [l for l in image.as_bytes().split(b"\n") if l and b":" not in l]
    assert max(len(l.rstrip(b"\r")) for l in body_lines) <= 76
    wait_queue_empty(d)


def test_file_types_come_from_the_content_and_names_are_rfc2231(relay_daemon, workdir):
    d, up = relay_daemon()
    pdf = os.path.join(workdir, "Bericht über März.pdf")
    data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
    with open(pdf, "wb") as f:
        f.write(data)
    misnamed = os.path.join(workdir, "notes.png")         # text, whatever its name says
    with open(misnamed, "w") as f:
        f.write("just some notes\n")
    r = send(d, ["-s", "plain", "-a", pdf, "-a", misnamed, "a@r.example"], "see the files\n")
    assert r.returncode == 0, r.stderr
    (m,) = up.wait_for(1)
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    text, one, two = msg.get_payload()
    assert text.get_content_type() == "text/plain" and text["Content-Transfer-Encoding"] == "7bit"
    assert content(text) == "see the files\n"
    assert one.get_content_type() == "application/pdf"
    assert one.get_filename() == "Bericht über März.pdf" and one.get_content() == data
    assert b"filename*=UTF-8''Bericht%20%C3%BCber%20M%C3%A4rz.pdf" in m.data
    assert two.get_content_type() == "text/plain" and content(two) == "just some notes\n"


def test_text_only_and_dry_run(relay_daemon):
    d, up = relay_daemon()
    r = send(d, ["--dry-run", "-s", "hello", "a@r.example"], "only text\n")
    assert r.returncode == 0, r.stderr
    msg = email.message_from_bytes(r.stdout, policy=email.policy.default)
    assert msg.get_content_type() == "text/plain" and content(msg) == "only text\n"
    assert msg["To"] == "a@r.example" and msg["Subject"] == "hello"
    r = send(d, ["-s", "hello", "-f", "me@sender.example", "a@r.example"], "only text\n")
    assert r.returncode == 0, r.stderr
    (m,) = up.wait_for(1)
    assert m.mail_from == "me@sender.example" and m.rcpt_tos == ["a@r.example"]
    assert content(email.message_from_bytes(m.data, policy=email.policy.default)) == "only text\n"
    wait_queue_empty(d)
    assert len(up.messages) == 1                      # the dry run sent nothing


@pytest.mark.parametrize("args, text, code, why", [
    (["-i", "TEXTFILE", "a@r.example"], "x\n", 65, "not an image"),
    (["-a", "/nonexistent/file", "a@r.example"], "x\n", 66, "cannot read /nonexistent/file"),
    (["a@r.example"], b"caf\xe9\n", 65, "not UTF-8"),
    (["-s", "two\nlines", "a@r.example"], "x\n", 65, "control character in the subject"),
    (["not an address"], "x\n", 65, "not an address"),
    (["-x", "a@r.example"], "x\n", 64, "unknown option"),
    ([], "x\n", 64, "no recipient"),
])
def test_bad_input_is_refused_and_nothing_is_sent(relay_daemon, workdir, args, text, code, why):
    d, up = relay_daemon()
    textfile = os.path.join(workdir, "t.txt")
    with open(textfile, "w") as f:
        f.write("hello\n")
    args = [textfile if a == "TEXTFILE" else a for a in args]
    r = subprocess.run(d.command(["send"] + args, None, None),
                       input=text if isinstance(text, bytes) else text.encode(),
                       capture_output=True, timeout=60, env=dict(os.environ, OUTBOX_CONF=d.conf))
    assert r.returncode == code and why.encode() in r.stderr, r
    assert up.messages == []


def test_the_sendmail_path_loads_no_libmagic():
    libs = subprocess.run(["ldd", OUTBOX], capture_output=True, text=True).stdout
    assert "libmagic" not in libs
    helper = subprocess.run(["ldd", os.path.join(os.path.dirname(OUTBOX), "outbox-compose")],
                            capture_output=True, text=True).stdout
    assert "libmagic" in helper


def test_with_outboxd_down_it_waits_in_pickup_like_sendmail(relay_daemon, workdir):
    d, up = relay_daemon()
    d.stop()
    chart = png(os.path.join(workdir, "chart.png"), 8, 8, (1, 2, 3))
    r = send(d, ["-s", "later", "-i", os.path.join(workdir, "chart.png"), "a@r.example"], "text\n")
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(os.path.join(d.spool, "pickup", "new"))) == 1
    d.start()
    (m,) = up.wait_for(1, timeout=30)
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Subject"] == "later" and m.rcpt_tos == ["a@r.example"]
    related = msg.get_payload()[1]
    assert related.get_payload()[1].get_content() == chart
