"""A real SMTP upstream for outbox's tests and demo, on aiosmtpd.

Upstream(certs, tls=..., ...) listens on 127.0.0.1 and records, for every
message, the envelope and the exact bytes it received (after the SMTP
dot-unstuffing, i.e. the message as the upstream would store it), plus
the raw bytes of each connection (the plaintext dialogue, after TLS).

TLS modes: "starttls" (offers STARTTLS, AUTH only after it), "implicit"
(TLS from the first byte, like port 465) and "none".  AUTH: PLAIN and
LOGIN against `users`, XOAUTH2 and OAUTHBEARER against `tokens`.

Switchable faults (set attributes at any time, they are read per event):
  tempfail_first  451 to the first N DATA ends
  reject_rcpt     set of recipient addresses answered 550
  disconnect_data drop the connection at the next N DATA ends, no reply
  data_delay      seconds to wait before answering each end of data
  tempfail_rcpt   451 to every RCPT while true (greylisting, throttling)
  refuse_data     replies (strings) for the next DATA commands that have
                  recipients: the transaction stays open, as in Postfix;
                  None in the list lets that DATA through
  hold            while true, EHLO is not answered (clients queue up)
  refuse_bdat     replies for the next non-LAST BDAT chunks
  mail_reply, data_reply, auth_reply
                  when set, the reply to every MAIL, end of data (DATA
                  or BDAT LAST: the message is recorded if it is 2xx) or
                  AUTH; lines joined with CRLF make a multi-line reply,
                  as real servers send ("250-472 byte chunk, total 472
                  \r\n250 OK id=1abc-000123-XY", Exim)
  rcpt_reply      {address: reply} for RCPT, the same way
  token_error     a JSON error: a refused XOAUTH2/OAUTHBEARER token gets
                  334 and it (base64) before the 535, as Gmail does
  Like Postfix and aiosmtpd, a MAIL inside an open transaction gets
  "503 nested MAIL command".
  offer_auth_in_clear  advertise AUTH before TLS (to tempt a client)
  cert            "good", "wrong-host", "expired" or "untrusted" (RSA keys),
                  or "ecdsa" (good, with a P-256 key)
  tls_version     None: TLS 1.2 and 1.3 (as OpenSSL offers); "1.2" or "1.3":
                  only that one.  "1.2" with an RSA certificate is the
                  server mbedTLS 3.6.6 cannot take unaided: OpenSSL, which
                  Python's ssl asks to prefer its own order, signs its
                  ServerKeyExchange with RSA-PSS when the client offers it

Run as a program (`python3 upstream.py --help`) it is the demo's upstream.
"""

import argparse
import asyncio
import base64
import os
import re
import ssl
import subprocess
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult

OPENSSL = "openssl"


def _run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _p256(d):
    """The parameters file for an ECDSA key on P-256, made in d."""
    _run(OPENSSL, "ecparam", "-name", "prime256v1", "-out", "p256.pem", cwd=d)
    return "p256.pem"


def make_certs(d):
    """Make a test CA and server certificates in directory d (openssl)."""
    os.makedirs(d, exist_ok=True)
    if all(os.path.exists(os.path.join(d, f)) for f in ("done", "ecdsa.pem")):
        return d
    _run(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "ca.pem", "-days", "30", "-subj", "/CN=outbox test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

    def leaf(name, cn, san, key="rsa:2048"):
        _run(OPENSSL, "req", "-newkey", key, "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
        _run(OPENSSL, "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", name + ".pem", "-extfile", name + ".ext", "-days", "30",
             cwd=d)

    leaf("good", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1")
    leaf("ecdsa", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", key="ec:" + _p256(d))
    leaf("wrong-host", "wrong.example", "DNS:wrong.example")
    # expired: "openssl ca" can set explicit start and end dates
    _run(OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "expired.key",
         "-out", "expired.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "expired.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca=t\n[t]\ndatabase=index.txt\nnew_certs_dir=.\n"
                "serial=serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n"
                "[p]\ncommonName=supplied\n[x]\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    _run(OPENSSL, "ca", "-batch", "-config", "expired.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
         "-in", "expired.csr", "-out", "expired.pem", "-extensions", "x",
         "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=d)
    # untrusted: self-signed, not under the test CA
    _run(OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "untrusted.key",
         "-out", "untrusted.pem", "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=d)
    open(os.path.join(d, "done"), "w").close()
    return d


class Message:
    def __init__(self, mail_from, rcpt_tos, data, tls, login, conn, mail_options):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.data = data          # bytes, as received after dot-unstuffing
        self.tls = tls            # TLS version string or None
        self.login = login        # authenticated user or None
        self.conn = conn          # connection number
        self.mail_options = mail_options
        self.at = time.time()     # when its end of data was answered

    def __repr__(self):
        return "<Message from=%r to=%r %d bytes>" % (self.mail_from, self.rcpt_tos, len(self.data))


class Connection:
    def __init__(self, n):
        self.n = n
        self.raw = bytearray()    # everything the client sent (plaintext)
        self.reads = []           # the same, as it came in: one item per read
        self.opened = time.time()


class _RecordingSMTP(SMTP):
    def __init__(self, handler, upstream, **kw):
        super().__init__(handler, **kw)
        self._upstream = upstream
        self._conn = None

    def connection_made(self, transport):
        if self._conn is None:
            self._conn = self._upstream._new_connection()
            self._tcp = transport             # STARTTLS puts a TLS transport on top of it
            self._upstream._transports.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc):
        self._upstream._transports.discard(getattr(self, "_tcp", None))
        super().connection_lost(exc)

    def data_received(self, data):
        if self._conn is not None:
            self._conn.raw += data
            self._conn.reads.append(bytes(data))
        super().data_received(data)

    # CHUNKING (RFC 3030), which aiosmtpd lacks: "BDAT <size> [LAST]" and
    # exactly size octets; the message ends with LAST and goes through the
    # same handle_DATA as one sent with DATA.
    async def smtp_BDAT(self, arg):
        up = self._upstream
        m = re.fullmatch(r"(\d+)( LAST)?", arg or "", re.I)
        if not up.chunking or not m:
            await self.push("501 5.5.4 Syntax: BDAT size [LAST]" if up.chunking
                            else '500 Error: command "BDAT" not recognized')
            self.transport.close()  # the octets that follow cannot be told from commands
            return
        octets = await self._reader.readexactly(int(m.group(1)))
        with up.lock:
            up.bdat_commands.append((int(m.group(1)), bool(m.group(2))))
            refusal = up.refuse_bdat.pop(0) if up.refuse_bdat and not m.group(2) \
                and self.envelope.rcpt_tos else None
        if refusal:
            self.envelope.bdat_failed = True
            await self.push(refusal)
            return
        if not self.envelope.rcpt_tos or getattr(self.envelope, "bdat_failed", False):
            self.envelope.bdat_failed = True
            await self.push("554 5.5.1 Error: no valid recipients" if not self.envelope.rcpt_tos
                            else "554 5.5.0 Error: earlier chunk refused")
            return  # as in Postfix, the transaction stays open: MAIL now is "nested"
        if self.envelope.original_content is None:
            self.envelope.original_content = b""
        self.envelope.original_content += octets
        if not m.group(2):
            await self.push("250 2.0.0 %d octets received" % len(octets))
            return
        self.envelope.content = self.envelope.original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


    async def smtp_DATA(self, arg):
        up = self._upstream
        with up.lock:
            refusal = up.refuse_data.pop(0) if up.refuse_data and self.envelope.rcpt_tos else None
            up.data_commands += 1
        if refusal:
            up.data_refused.append(list(self.envelope.rcpt_tos))
            await self.push(refusal)  # the envelope stays: MAIL now is "nested"
            return
        await super().smtp_DATA(arg)


class _Handler:
    def __init__(self, upstream):
        self.up = upstream

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        while self.up.hold:
            await asyncio.sleep(0.02)
        if self.up.pipelining:  # aiosmtpd reads commands in order; it just does not say so
            responses.insert(1, "250-PIPELINING")
        if self.up.chunking:
            responses.insert(-1, "250-CHUNKING")
        if getattr(self.up, "dsn", False):   # offer DSN (RFC 3461): set up.dsn = True
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.up.mail_reply:
            return self.up.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.up.tempfail_rcpt:
            return "451 4.7.1 <%s>: Recipient address rejected: greylisted" % address
        if address in self.up.rcpt_reply:
            return self.up.rcpt_reply[address]
        if address in self.up.reject_rcpt:
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        up = self.up
        if up.data_delay:
            await asyncio.sleep(up.data_delay)
        with up.lock:
            up.data_ends += 1
            if up.disconnect_data > 0:
                up.disconnect_data -= 1
                server.transport.abort()
                return "451 4.4.2 dropped"  # never reaches the client
            if up.tempfail_first > 0:
                up.tempfail_first -= 1
                up.tempfails_sent.append(time.time())
                return "451 4.7.1 Try again later"
        if up.data_reply and not up.data_reply.startswith("2"):
            return up.data_reply
        ssl_obj = server.transport.get_extra_info("ssl_object")
        msg = Message(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                      ssl_obj.version() if ssl_obj else None,
                      session.auth_data if session.authenticated else None,
                      server._conn.n if server._conn else -1,
                      list(envelope.mail_options))
        with up.lock:
            up.messages.append(msg)
            up.cond.notify_all()
        if up.on_message:
            up.on_message(msg)
        return up.data_reply or "250 2.0.0 Ok: queued"

    async def auth_XOAUTH2(self, server, args):
        return await self._token_error(server, self._oauth(server, args, b"\x01auth=Bearer "))

    async def auth_OAUTHBEARER(self, server, args):
        return await self._token_error(server, self._oauth(server, args, b"\x01auth=Bearer "))

    async def _token_error(self, server, result):
        # with token_error set, a refused token is answered as Gmail does
        # (RFC 7628 3.2.2): 334 and the JSON error in base64, then, after
        # the client's empty line, the final 535
        if not result.success and self.up.token_error:
            await server.challenge_auth(self.up.token_error)
        return result

    def _oauth(self, server, args, marker):
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            blob = base64.b64decode(args[1], validate=True)
        except Exception:
            return AuthResult(success=False, handled=False)
        self.up.tokens_seen.append(blob)
        if marker not in blob:
            return AuthResult(success=False, handled=False)
        token = blob.split(marker, 1)[1].split(b"\x01", 1)[0].decode()
        if blob.startswith(b"n,a="):  # OAUTHBEARER: the gs2 header names the user
            user = blob[4:].split(b",", 1)[0].decode()
        else:
            user = blob.split(b"user=", 1)[1].split(b"\x01", 1)[0].decode() if b"user=" in blob else None
        if token in self.up.tokens:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


class _Controller(Controller):
    def __init__(self, upstream, handler, **kw):
        self._upstream = upstream
        super().__init__(handler, **kw)

    def factory(self):
        return _RecordingSMTP(self.handler, self._upstream, **self.SMTP_kwargs)

    def cancel_tasks(self, stop_loop=True):
        # Python 3.12 and later (Debian 13): the server's wait_closed() in
        # stop() waits for every connection, so a client's idle session
        # would hold stop() until it times out: end them first.  A TLS
        # transport the client has just closed is already unwrapped, and
        # its abort() raises ("cannot switch state from UNWRAPPED to
        # UNWRAPPED") before its connection_lost() has run: that must not
        # keep the loop from stopping (stop() joins the thread for ever)
        try:
            for t in list(self._upstream._transports):
                try:
                    t.abort()
                except (RuntimeError, AttributeError):   # or already gone
                    pass
        finally:
            super().cancel_tasks(stop_loop)


class Upstream:
    def __init__(self, certs, tls="starttls", port=0, users=None, tokens=(), cert="good",
                 offer_auth_in_clear=False, require_auth=False, on_message=None,
                 data_size_limit=64 * 1024 * 1024, smtputf8=True, idle_timeout=300,
                 chunking=False, pipelining=True, auth_exclude=(), tls_version=None):
        self.certs = certs
        self.tls = tls
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.tokens_seen = []
        self.cert = cert
        self.tls_version = tls_version
        self.offer_auth_in_clear = offer_auth_in_clear
        self.require_auth = require_auth
        self.on_message = on_message
        self.messages = []
        self.connections = []
        self.reject_rcpt = set()
        self.mail_reply = None        # e.g. "550 5.4.5 Daily user sending quota exceeded."
        self.rcpt_reply = {}
        self.data_reply = None
        self.auth_reply = None
        self.token_error = None
        self.tempfail_first = 0
        self.tempfail_rcpt = False
        self.refuse_data = []
        self.data_refused = []        # the recipients of each refused DATA
        self.refuse_bdat = []
        self.data_commands = 0
        self.hold = False
        self.tempfails_sent = []
        self.disconnect_data = 0
        self.data_delay = 0.0
        self.data_ends = 0
        self.auth_attempts = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.port = port or free_port()
        self.data_size_limit = data_size_limit
        self.smtputf8 = smtputf8
        self.idle_timeout = idle_timeout
        self.chunking = chunking      # offer CHUNKING and take BDAT
        self.pipelining = pipelining  # offer PIPELINING
        self.auth_exclude = list(auth_exclude)  # AUTH mechanisms not offered
        self.bdat_commands = []       # (size, last) of every BDAT received
        self.controller = None
        self._transports = set()      # open connections (their TCP transports)

    # --- life cycle ---
    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if self.tls_version:  # the one version this server speaks (class comment)
            v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[self.tls_version]
            ctx.minimum_version = ctx.maximum_version = v
        ctx.load_cert_chain(os.path.join(self.certs, self.cert + ".pem"),
                            os.path.join(self.certs, self.cert + ".key"))
        return ctx

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode()
        password = auth_data.password.decode()
        ok = self.users.get(login) == password and not self.auth_reply
        self.auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=login, message=self.auth_reply)

    def start(self):
        kw = dict(hostname="127.0.0.1", port=self.port, server_hostname="upstream.test",
                  authenticator=self._authenticator, auth_required=self.require_auth,
                  auth_require_tls=not self.offer_auth_in_clear and self.tls != "implicit",
                  enable_SMTPUTF8=self.smtputf8,
                  decode_data=False, data_size_limit=self.data_size_limit,
                  timeout=self.idle_timeout, auth_exclude_mechanism=self.auth_exclude)
        if self.tls == "starttls":
            kw["tls_context"] = self._ssl_context()
        elif self.tls == "implicit":
            kw["ssl_context"] = self._ssl_context()
        self.controller = _Controller(self, _Handler(self), **kw)
        self.controller.start()
        with self.lock:  # forget the controller's own start-up probe
            self.connections = []
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _new_connection(self):
        with self.lock:
            c = Connection(len(self.connections) + 1)
            self.connections.append(c)
            return c

    # --- what tests ask ---
    @property
    def ca_file(self):
        return os.path.join(self.certs, "ca.pem")

    def wait_for(self, n, timeout=20):
        """Wait until n messages have arrived; returns the list."""
        deadline = time.time() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("upstream got %d of %d messages in %ss"
                                         % (len(self.messages), n, timeout))
                self.cond.wait(left)
            return list(self.messages)

    @staticmethod
    def is_report(m):
        """A delivery status notification outboxd sent (the null sender)."""
        return m.mail_from in ("", "<>")

    def originals(self):
        """The messages but outboxd's reports."""
        with self.lock:
            return [m for m in self.messages if not self.is_report(m)]

    def reports(self):
        with self.lock:
            return [m for m in self.messages if self.is_report(m)]

    def wait_for_originals(self, n, timeout=20, reports=False):
        """Wait until n messages that are not reports (or, with
        reports, n reports) have arrived; returns them."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                got = [m for m in self.messages if self.is_report(m) == reports]
                if len(got) >= n:
                    return got
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("upstream got %d of %d %s in %ss"
                                         % (len(got), n, "reports" if reports else "messages", timeout))
                self.cond.wait(left)

    def wait_for_reports(self, n, timeout=20):
        return self.wait_for_originals(n, timeout, reports=True)

    def sessions(self):
        """Connections that said anything (EHLO and on)."""
        return [c for c in self.connections if c.raw]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description="outbox demo upstream (aiosmtpd)")
    ap.add_argument("--port", type=int, default=2587)
    ap.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    ap.add_argument("--certs", required=True, help="directory for the test CA and certificates")
    ap.add_argument("--user", default="demo")
    ap.add_argument("--password", default="demo-password")
    ap.add_argument("--maildir", help="write each received message here")
    ap.add_argument("--chunking", action="store_true", help="offer CHUNKING (BDAT), as Gmail does")
    args = ap.parse_args()
    make_certs(args.certs)

    def show(msg):
        print("upstream: received from=<%s> to=%s tls=%s auth=%s bytes=%d"
              % (msg.mail_from, ",".join("<%s>" % r for r in msg.rcpt_tos), msg.tls, msg.login,
                 len(msg.data)), flush=True)
        if args.maildir:
            os.makedirs(args.maildir, exist_ok=True)
            name = os.path.join(args.maildir, "%d.%d.eml" % (time.time() * 1000, len(msg.data)))
            with open(name, "wb") as f:
                f.write(msg.data)

    up = Upstream(args.certs, tls=args.tls, port=args.port, users={args.user: args.password},
                  on_message=show, chunking=args.chunking).start()
    print("upstream: listening on 127.0.0.1:%d tls=%s (CA %s)" % (up.port, args.tls, up.ca_file),
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        up.stop()


if __name__ == "__main__":
    sys.exit(main())
