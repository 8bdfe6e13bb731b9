"""A local OAuth2 authorization server over HTTPS for the tests: the
token endpoint (refresh_token, device_code, authorization_code with PKCE
and client_credentials grants: RFC 6749, RFC 8628, RFC 7636), the device
authorization endpoint and the authorization endpoint (which redirects
to the client's loopback redirect_uri as Google's and Microsoft's do),
with the test CA's certificate for localhost.  Every access token it
issues is added to the upstream fixture's accepted XOAUTH2 tokens, so a
message delivered with one proves the token came from here.

provider="google" or "microsoft" makes it behave as that provider does
where it matters to us; each such behaviour is in one place below,
marked BEHAVIOUR with where it comes from.  provider=None is a plain
RFC server (the older tests' stand-in)."""

import base64
import hashlib
import http.server
import json
import os
import secrets
import ssl
import threading
import time
import urllib.parse

# BEHAVIOUR (Microsoft): Exchange Online's SMTP takes OAuth2 as SASL XOAUTH2
# only and offers "AUTH LOGIN XOAUTH2" ("Authenticate an IMAP, POP or SMTP
# connection using OAuth", learn.microsoft.com/exchange/client-developer/
# legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth,
# "SASL XOAUTH2"): the upstream stand-in's auth_exclude for it.
MICROSOFT_AUTH_EXCLUDE = ("PLAIN", "OAUTHBEARER")

# BEHAVIOUR (Google): the device flow allows "a limited set of scopes", not
# https://mail.google.com/ (developers.google.com/identity/protocols/oauth2/
# limited-input-device, "Allowed scopes"); any other is invalid_scope.
GOOGLE_DEVICE_SCOPES = {"email", "openid", "profile", "https://www.googleapis.com/auth/drive.appdata",
                        "https://www.googleapis.com/auth/drive.file", "https://www.googleapis.com/auth/youtube",
                        "https://www.googleapis.com/auth/youtube.readonly",
                        "https://www.googleapis.com/auth/userinfo.email",
                        "https://www.googleapis.com/auth/userinfo.profile"}


def s256(verifier):
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def loopback(uri):
    """Is uri a loopback redirect a native app may use (RFC 8252 section 7.3:
    http, 127.0.0.1 or [::1], any port; Google's "Loopback IP address"
    option, Microsoft's http://localhost or 127.0.0.1 for public clients)?"""
    u = urllib.parse.urlsplit(uri)
    return u.scheme == "http" and u.hostname in ("127.0.0.1", "::1", "localhost") and u.port is not None


class OAuth2Server:
    def __init__(self, certs, upstream=None, client_id="outbox-test", client_secret=None,
                 refresh_token="refresh-1", expires_in=3600, rotate=False, approve_after=2,
                 skip_first=False, provider=None):
        self.certs = certs
        self.upstream = upstream
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        self.expires_in = expires_in
        self.provider = provider          # "google", "microsoft" or None
        # BEHAVIOUR (Microsoft): a refresh returns a new refresh token and the old
        # one stops working ("OAuth 2.0 authorization code flow", learn.microsoft.com/
        # entra/identity-platform/v2-oauth2-auth-code-flow, "Refresh the access
        # token": refresh tokens replace themselves with a fresh token upon every use)
        self.rotate = rotate or provider == "microsoft"
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
        self.deny = False                 # the user refuses in the browser: error=access_denied
        self.authorizations = []          # the query of each authorization request
        self.codes = {}                   # code -> the authorization request it answers
        self.consented = False            # (Google) the user consented once already
        self.rotations = 0

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

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
                with outer.lock:
                    outer.requests.append((u.path, query))
                    status, location = outer.authorize(u.path, query)
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

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

    def revoke(self):
        """The user revoked the access (or changed the password): every
        refresh token now answers invalid_grant (RFC 6749 section 5.2)."""
        self.refresh_tokens = set()

    # --- the authorization endpoint (RFC 6749 4.1.1, RFC 7636 4.3) ---
    def authorize(self, path, q):
        """(status, Location) for a GET: a redirect to the client's redirect_uri
        with code and state, or with error and state (RFC 6749 4.1.2)."""
        if path != "/authorize":
            return 404, None
        uri = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id or not loopback(uri):
            return 400, None            # never redirected to an unknown client (4.1.2.1)
        self.authorizations.append(q)

        def back(**params):
            params["state"] = q.get("state")
            params = {k: v for k, v in params.items() if v is not None}
            return 302, uri + ("&" if "?" in uri else "?") + urllib.parse.urlencode(params)
        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if self.deny:
            return back(error="access_denied", error_description="the user said no")
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = q
        # Google's redirect names the scope granted as well
        return back(code=code, scope=q.get("scope") if self.provider == "google" else None)

    def gives_refresh_token(self, q):
        """Does the authorization q come with a refresh token?"""
        if self.provider == "google":
            # BEHAVIOUR (Google): a refresh token only with access_type=offline, and
            # after the first consent only with prompt=consent ("OAuth 2.0 for Mobile
            # & Desktop Apps", developers.google.com/identity/protocols/oauth2/
            # native-app, "Step 2", access_type and prompt; "Refreshing an access token")
            first = not self.consented
            self.consented = True
            return q.get("access_type") == "offline" and (first or q.get("prompt") == "consent")
        if self.provider == "microsoft":
            # BEHAVIOUR (Microsoft): a refresh token only with offline_access in the
            # scope (the "Authenticate an IMAP, POP or SMTP connection" page, "Get an
            # access token")
            return "offline_access" in q.get("scope", "").split()
        return True

    def exchange(self, form):
        """The authorization_code grant (RFC 6749 4.1.3, RFC 7636 4.6)."""
        q = self.codes.get(form.get("code"))
        if q is None or form.get("redirect_uri") != q.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "unknown code or redirect_uri"}
        if s256(form.get("code_verifier", "")) != q.get("code_challenge"):
            return 400, {"error": "invalid_grant", "error_description": "code_verifier does not match"}
        del self.codes[form["code"]]                # a code is good once
        out = self.issue()
        if self.gives_refresh_token(q):
            new = "refresh-code-%d" % self.n
            self.refresh_tokens.add(new)
            out["refresh_token"] = new
        return 200, out

    def client_credentials(self, form):
        """RFC 6749 4.4: the client's secret, and no refresh token."""
        if self.client_secret is None or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        # BEHAVIOUR (Microsoft): the scope of a client credentials request is the
        # resource's /.default ("client credentials flow", learn.microsoft.com/entra/
        # identity-platform/v2-oauth2-client-creds-grant-flow, "Get a token")
        if self.provider == "microsoft" and not form.get("scope", "").endswith("/.default"):
            return 400, {"error": "invalid_scope", "error_description": "AADSTS1002012: scope must be /.default"}
        return 200, self.issue()

    def client_ok(self, form):
        return form.get("client_id") == self.client_id and \
            (self.client_secret is None or form.get("client_secret") == self.client_secret)

    def handle(self, path, form):
        if self.down:
            return 503, {"error": "temporarily_unavailable"}
        if form.get("client_id") != self.client_id or (path != "/device" and not self.client_ok(form)):
            return 401, {"error": "invalid_client"}    # (a device request names the client only: RFC 8628 3.1)
        if path == "/device":
            if self.provider == "google" and not set(form.get("scope", "").split()) <= GOOGLE_DEVICE_SCOPES:
                return 400, {"error": "invalid_scope"}      # BEHAVIOUR (Google): see GOOGLE_DEVICE_SCOPES
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
                self.rotations += 1
                new = "refresh-%d" % (self.rotations + 1)
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
        if grant == "authorization_code":
            return self.exchange(form)
        if grant == "client_credentials":
            return self.client_credentials(form)
        return 400, {"error": "unsupported_grant_type"}
