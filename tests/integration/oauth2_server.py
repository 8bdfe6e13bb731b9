"""A local OAuth2 authorization server over HTTPS for the tests: the
token endpoint (refresh_token and device_code grants, RFC 6749 and
RFC 8628) and the device authorization endpoint, with the test CA's
certificate for localhost.  Every token it issues is added to the
upstream fixture's accepted XOAUTH2 tokens, so a message delivered with
one proves the token came from here."""

import http.server
import json
import os
import ssl
import threading
import time
import urllib.parse


class OAuth2Server:
    def __init__(self, certs, upstream=None, client_id="outbox-test", client_secret=None,
                 refresh_token="refresh-1", expires_in=3600, rotate=False, approve_after=2,
                 skip_first=False):
        self.certs = certs
        self.upstream = upstream
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.expires_in = expires_in
        self.rotate = rotate              # each refresh returns a new refresh token
        self.approve_after = approve_after  # device polls answered "authorization_pending"
        self.requests = []                # (path, form) of each request
        self.issued = []                  # access tokens, in order
        self.down = False                 # answer 503 to everything
        self.polls = 0
        self.skip_first = skip_first      # the first token issued is not the upstream's (refused)
        # a hostile endpoint (test_local_adversary_output.py): text appended to each
        # access_token and to invalid_grant's error_description, e.g. a newline and an ESC
        self.forge = ""
        self.lock = threading.Lock()
        self.n = 0

    # --- what tests ask ---
    def url(self, path):
        return "https://localhost:%d%s" % (self.port, path)

    def grants(self, kind):
        return [f for p, f in self.requests if f.get("grant_type") == kind]

    # --- the server ---
    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}
                with outer.lock:
                    outer.requests.append((self.path, form))
                    status, obj = outer.handle(self.path, form)
                self.answer(status, obj)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.certs, "good.pem"), os.path.join(self.certs, "good.key"))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def issue(self):
        self.n += 1
        token = "access-%d-%d" % (self.n, int(time.time() * 1000) % 100000) + self.forge
        self.issued.append(token)
        if self.upstream is not None and not (self.skip_first and self.n == 1):
            self.upstream.tokens.add(token)
        out = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        return out

    def client_ok(self, form):
        return form.get("client_id") == self.client_id and \
            (self.client_secret is None or form.get("client_secret") == self.client_secret)

    def handle(self, path, form):
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        if not self.client_ok(form):
            return 401, {"error": "invalid_client"}
        if path == "/device":
            return 200, {"device_code": "dev-code-1", "user_code": "WDJB-MJHT",
                         "verification_uri": self.url("/verify"), "expires_in": 60, "interval": 1}
        if path != "/token":
            return 404, {"error": "not_found"}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "the refresh token is not valid" + self.forge}
            out = self.issue()
            if self.rotate:
                new = "refresh-%d" % (len(self.refresh_tokens) + 1)
                self.refresh_tokens = {new}
                out["refresh_token"] = new
            return 200, out
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != "dev-code-1":
                return 400, {"error": "invalid_grant"}
            self.polls += 1
            if self.polls <= self.approve_after:
                return 400, {"error": "authorization_pending"}
            out = self.issue()
            out["refresh_token"] = "refresh-device"
            self.refresh_tokens.add("refresh-device")
            return 200, out
        return 400, {"error": "unsupported_grant_type"}
