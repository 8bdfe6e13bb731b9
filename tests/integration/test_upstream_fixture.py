"""The upstream fixture itself: TLS modes, AUTH, faults and recording,
checked with Python's smtplib (which verifies certificates)."""

import smtplib
import ssl

import pytest


def client_ctx(up):
    ctx = ssl.create_default_context(cafile=up.ca_file)
    return ctx


def test_starttls_auth_plain_and_login_are_recorded(make_upstream):
    up = make_upstream(tls="starttls", users={"u": "p"})
    for mech in ("PLAIN", "LOGIN"):
        with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
            s.ehlo("client.test")
            assert "auth" not in s.esmtp_features  # never offered in clear
            s.starttls(context=client_ctx(up))
            s.ehlo("client.test")
            s.user, s.password = "u", "p"
            code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()))
            assert code == 235
            s.sendmail("a@x.example", ["b@y.example"], b"Subject: t\r\n\r\n.dot\r\nline\r\n")
    msgs = up.wait_for(2)
    assert msgs[0].data == b"Subject: t\r\n\r\n.dot\r\nline\r\n"
    assert msgs[0].tls and msgs[0].tls.startswith("TLSv1")
    assert msgs[0].login == "u"
    assert b"..dot" in up.sessions()[0].raw  # the raw bytes keep the stuffing
    assert [a[:3] for a in up.auth_attempts] == [("PLAIN", "u", True), ("LOGIN", "u", True)]


def test_implicit_tls(make_upstream):
    up = make_upstream(tls="implicit")
    with smtplib.SMTP_SSL("127.0.0.1", up.port, context=client_ctx(up), timeout=10) as s:
        s.sendmail("a@x.example", ["b@y.example"], b"hi\r\n")
    assert up.wait_for(1)[0].tls


def test_faults(make_upstream):
    up = make_upstream(tls="none")
    up.tempfail_first = 1
    up.reject_rcpt = {"bad@y.example"}
    with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("a@x.example", ["b@y.example"], b"one\r\n")
        assert e.value.smtp_code == 451
        refused = s.sendmail("a@x.example", ["b@y.example", "bad@y.example"], b"two\r\n")
        assert refused == {"bad@y.example": (550, b"5.1.1 <bad@y.example>: Recipient address rejected")}
    up.disconnect_data = 1
    with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@x.example", ["b@y.example"], b"three\r\n")
    msgs = up.wait_for(1)
    assert len(msgs) == 1 and msgs[0].data == b"two\r\n" and msgs[0].rcpt_tos == ["b@y.example"]


@pytest.mark.parametrize("cert", ["wrong-host", "expired", "untrusted"])
def test_bad_certificates_fail_verification(make_upstream, cert):
    up = make_upstream(tls="starttls", cert=cert)
    with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
        s.ehlo("client.test")
        with pytest.raises(ssl.SSLCertVerificationError):
            s.starttls(context=client_ctx(up))


def test_no_starttls_mode_tempts_with_auth(make_upstream):
    up = make_upstream(tls="none", users={"u": "p"}, offer_auth_in_clear=True)
    with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
        s.ehlo("client.test")
        assert "starttls" not in s.esmtp_features
        assert "auth" in s.esmtp_features


def test_xoauth2_token_checked(make_upstream):
    import base64
    up = make_upstream(tls="starttls", tokens={"good-token"})
    with smtplib.SMTP("127.0.0.1", up.port, timeout=10) as s:
        s.starttls(context=client_ctx(up))
        s.ehlo("client.test")
        bad = base64.b64encode(b"user=u\x01auth=Bearer wrong\x01\x01").decode()
        assert s.docmd("AUTH", "XOAUTH2 " + bad)[0] == 535
        good = base64.b64encode(b"user=u\x01auth=Bearer good-token\x01\x01").decode()
        assert s.docmd("AUTH", "XOAUTH2 " + good)[0] == 235
