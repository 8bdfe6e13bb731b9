"""`outbox oauth2 login` as the real providers take it (issue 21, points 1,
2 and 7), against the stand-in authorization server (oauth2_server.py with
provider="google" or "microsoft"): the browser login (authorization code,
PKCE S256, loopback redirect) end to end, the pasted address instead, a
wrong state and a wrong verifier refused, Google's device flow refusing
Gmail's scope, Google's refresh token only with access_type=offline,
Microsoft's app-only client_credentials delivery and its rotating refresh
tokens.  The "browser" is urllib: it follows the authorization URL the
helper printed, gets the stand-in's 302 and requests the loopback
redirect (or the test pastes the address on the helper's stdin).
Asserted on the files written, the requests the endpoint got and what
the upstream received with which token."""

import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import IS_ROOT, OUTBOX
from oauth2_server import MICROSOFT_AUTH_EXCLUDE, OAuth2Server, s256
from test_delivery import send, wait_queue_empty
from test_oauth2 import assert_no_secret, assert_token_file, client_secret_file, token_dir

GOOGLE_SCOPE = "https://mail.google.com/"
MICROSOFT_SCOPE = "https://outlook.office.com/SMTP.Send offline_access"


@pytest.fixture
def login(make_daemon, make_upstream, workdir, certs):
    """login(provider, relay keys, server keywords, upstream keywords) ->
    (daemon, upstream, server, refresh token file); the daemon not started."""
    servers = []

    def make(provider, relay=None, server_kw=None, up_kw=None):
        up = make_upstream(users={}, **(up_kw or {}))
        srv = OAuth2Server(certs, up, client_secret="the-client-secret", provider=provider,
                           **(server_kw or {})).start()
        servers.append(srv)
        secret = client_secret_file(workdir)
        r = {"host": "localhost", "port": str(up.port), "ca_file": up.ca_file, "tls": "starttls",
             "workers": "1", "timeout": "10s", "user": "me@example.com",
             "oauth2_token_url": srv.url("/token"), "oauth2_auth_url": srv.url("/authorize"),
             "oauth2_client_id": "outbox-test", "oauth2_client_secret_file": secret,
             "oauth2_refresh_token_file": os.path.join(token_dir(workdir), "refresh"),
             "oauth2_scope": {"google": GOOGLE_SCOPE, "microsoft": MICROSOFT_SCOPE}[provider]}
        r.update(relay or {})
        r = {k: v for k, v in r.items() if v is not None}
        d = make_daemon(extra={"relay": r, "queue": {"retry_min": "1s", "retry_max": "2s"}}, start=False)
        return d, up, srv, r.get("oauth2_refresh_token_file")

    yield make
    for s in servers:
        s.stop()


class Login:
    """outbox oauth2 login ARGS running: the URL it printed, its stdin."""

    def __init__(self, d, *args):
        self.p = subprocess.Popen([OUTBOX, "-C", d.conf, "oauth2", "login"] + list(args),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        self.printed = ""
        for line in self.p.stdout:
            self.printed += line
            if line.strip().startswith("https://"):
                self.url = line.strip()
                break
        else:
            raise AssertionError("no URL printed: " + self.printed + self.p.stderr.read())
        self.query = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query).items()}

    def paste(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def wait(self):
        out, err = self.p.communicate(timeout=60)
        self.stdout, self.stderr = self.printed + out, err
        return self.p.returncode


def browser(ca_file, follow=True):
    """An HTTP client as the user's browser: the test CA trusted, no proxy,
    following redirects (to the loopback listener) or not."""
    handlers = [urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file))]
    if not follow:
        class Stop(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **kw):
                return None
        handlers.append(Stop())
    return urllib.request.build_opener(*handlers)


def redirect_of(url, ca_file):
    """Where the authorization endpoint sends the browser (its 302's Location)."""
    try:
        browser(ca_file, follow=False).open(url, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 302, e.code
        return e.headers["Location"]
    raise AssertionError("no redirect")


def open_page(url, ca_file):
    """(status, page) of url in the browser (redirects followed)."""
    try:
        with browser(ca_file).open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_browser_login_end_to_end(login):
    """Google: the default is the browser; the URL has everything Google
    needs, the redirect is taken on 127.0.0.1, the code exchanged with the
    verifier whose S256 is the challenge, the refresh token stored 0600,
    and outboxd then sends with it."""
    d, up, srv, path = login("google")
    run = Login(d)
    q = run.query
    assert run.url.startswith(srv.url("/authorize") + "?")
    assert q["response_type"] == "code" and q["client_id"] == "outbox-test" and q["scope"] == GOOGLE_SCOPE
    assert q["redirect_uri"].startswith("http://127.0.0.1:") and q["redirect_uri"].endswith("/")
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert q["access_type"] == "offline" and q["prompt"] == "consent"
    assert len(q["state"]) >= 16
    status, page = open_page(run.url, up.ca_file)      # the stand-in's 302, then the loopback
    assert status == 200 and "logged in" in page
    assert run.wait() == 0, run.stdout + run.stderr
    (ex,) = srv.grants("authorization_code")
    assert s256(ex["code_verifier"]) == q["code_challenge"] and 43 <= len(ex["code_verifier"]) <= 128
    assert set(ex["code_verifier"]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert ex["redirect_uri"] == q["redirect_uri"] and ex["client_secret"] == "the-client-secret"
    refresh = [t for t in srv.refresh_tokens if t.startswith("refresh-code-")]
    assert len(refresh) == 1
    assert_token_file(path, refresh[0])
    assert "Approved: the refresh token is in %s" % path in run.stdout
    assert_no_secret(run.stdout + run.stderr, srv)
    assert ex["code_verifier"] not in run.stdout + run.stderr
    d.start()
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.login == "me@example.com"
    assert srv.grants("refresh_token")[-1]["refresh_token"] == refresh[0]
    assert any(b"auth=Bearer %s\x01" % srv.issued[-1].encode() in b for b in up.tokens_seen)


def test_the_redirect_pasted_on_stdin(login):
    """A headless host: the browser elsewhere cannot load the loopback
    address; the user pastes it.  Microsoft with --browser: no Google
    parameters."""
    d, up, srv, path = login("microsoft")
    run = Login(d, "--browser")
    assert "access_type" not in run.query and "prompt" not in run.query
    assert run.query["scope"] == MICROSOFT_SCOPE
    location = redirect_of(run.url, up.ca_file)
    assert location.startswith(run.query["redirect_uri"] + "?")
    run.paste("")                                       # a stray Enter first
    run.paste("  " + location + "  ")
    assert run.wait() == 0, run.stdout + run.stderr
    assert len(srv.grants("authorization_code")) == 1
    # the check that followed rotated it (Microsoft rotates at every refresh)
    assert_token_file(path, sorted(srv.refresh_tokens)[0])
    assert srv.grants("refresh_token")[0]["refresh_token"].startswith("refresh-code-")


@pytest.mark.parametrize("state", ["wrong", "missing"])
def test_a_redirect_with_another_state_is_refused(login, state):
    d, up, srv, path = login("google")
    run = Login(d)
    location = redirect_of(run.url, up.ca_file)
    u = urllib.parse.urlsplit(location)
    q = dict(urllib.parse.parse_qsl(u.query))
    if state == "wrong":
        q["state"] = "forged-" + q["state"]
    else:
        del q["state"]
    status, page = open_page(u._replace(query=urllib.parse.urlencode(q)).geturl(), up.ca_file)
    assert status == 400 and "failed" in page and q["code"] not in page
    assert run.wait() == 1
    assert "state is %s" % state in run.stderr and "refused" in run.stderr
    assert srv.grants("authorization_code") == []      # the code was never used
    assert not os.path.exists(path)


def test_an_error_redirect_is_reported(login):
    d, up, srv, path = login("google")
    srv.deny = True
    run = Login(d)
    status, page = open_page(run.url, up.ca_file)
    assert status == 400
    assert run.wait() == 1
    assert "the provider refused: access_denied: the user said no" in run.stderr
    assert not os.path.exists(path)


def test_the_code_needs_its_verifier(login):
    """Whoever catches the redirect cannot use the code without the
    verifier (RFC 7636): the stand-in refuses it; the helper, which has
    it, then gets the token with the same code."""
    d, up, srv, path = login("google")
    run = Login(d)
    location = redirect_of(run.url, up.ca_file)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "client_id": "outbox-test",
                                   "client_secret": "the-client-secret", "redirect_uri": run.query["redirect_uri"],
                                   "code_verifier": "x" * 43}).encode()
    with pytest.raises(urllib.error.HTTPError) as e:
        browser(up.ca_file).open(srv.url("/token"), data=form, timeout=10)
    assert e.value.code == 400 and b"invalid_grant" in e.value.read()
    run.paste(location)
    assert run.wait() == 0, run.stderr
    assert [g["code_verifier"] == "x" * 43 for g in srv.grants("authorization_code")] == [True, False]
    assert os.path.exists(path)


def test_google_device_flow_is_refused_and_says_browser(login):
    d, up, srv, path = login("google", relay={"oauth2_device_url": None})
    d.sections["relay"]["oauth2_device_url"] = srv.url("/device")
    d.write_conf()
    r = subprocess.run([OUTBOX, "-C", d.conf, "oauth2", "login", "--device"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "invalid_scope" in r.stderr and "oauth2 login --browser" in r.stderr, r.stderr
    assert [f.get("scope") for p, f in srv.requests if p == "/device"] == [GOOGLE_SCOPE]
    assert not os.path.exists(path)


def test_google_gives_a_refresh_token_only_offline(login):
    """The stand-in: without access_type=offline no refresh token (and after
    a first consent, none without prompt=consent); the helper sends both, so
    a later login still gets one."""
    d, up, srv, path = login("google")
    b = browser(up.ca_file)
    verifier = "v" * 43
    params = {"response_type": "code", "client_id": "outbox-test", "redirect_uri": "http://127.0.0.1:9/",
              "scope": GOOGLE_SCOPE, "state": "s", "code_challenge": s256(verifier),
              "code_challenge_method": "S256"}
    location = redirect_of(srv.url("/authorize?") + urllib.parse.urlencode(params), up.ca_file)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "client_id": "outbox-test",
                                   "client_secret": "the-client-secret", "redirect_uri": params["redirect_uri"],
                                   "code_verifier": verifier}).encode()
    import json
    with b.open(srv.url("/token"), data=form, timeout=10) as r:
        answer = json.loads(r.read())
    assert "access_token" in answer and "refresh_token" not in answer
    run = Login(d)                                      # the user consented once already
    assert run.query["access_type"] == "offline" and run.query["prompt"] == "consent"
    run.paste(redirect_of(run.url, up.ca_file))
    assert run.wait() == 0, run.stderr
    with open(path) as f:
        assert f.read().startswith("refresh-code-")


def test_client_credentials_delivers_as_the_mailbox(login):
    """Microsoft 365 app-only: no refresh token file, no login; outboxd gets
    a token with the client secret (scope .default) and authenticates with
    XOAUTH2 as the mailbox, to an upstream that offers LOGIN and XOAUTH2
    only, as Exchange Online does."""
    d, up, srv, _ = login("microsoft", up_kw={"auth_exclude": MICROSOFT_AUTH_EXCLUDE},
                          relay={"oauth2_grant": "client_credentials", "oauth2_refresh_token_file": None,
                                 "oauth2_scope": None, "oauth2_auth_url": None,
                                 "user": "mailbox@example.com"})
    r = subprocess.run([OUTBOX, "-C", d.conf, "oauth2", "login"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "no login is needed" in r.stdout, r.stdout + r.stderr
    d.start()
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.login == "mailbox@example.com"
    grants = srv.grants("client_credentials")
    assert len(grants) == 2                             # the login's check, then outboxd's
    assert all(g["scope"] == "https://outlook.office365.com/.default"
               and g["client_secret"] == "the-client-secret" for g in grants)
    blob = b"user=mailbox@example.com\x01auth=Bearer %s\x01\x01" % srv.issued[-1].encode()
    assert blob in up.tokens_seen
    assert srv.grants("refresh_token") == []
    wait_queue_empty(d)
    assert_no_secret(d.log(), srv)


def test_client_credentials_keys_are_checked(login):
    from test_config_check import check
    d, up, srv, _ = login("microsoft", relay={"oauth2_grant": "client_credentials",
                                              "oauth2_refresh_token_file": None,
                                              "oauth2_client_secret_file": None,
                                              "oauth2_auth_url": "http://login.example/authorize"})
    r = check(d.conf)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "client_credentials, but oauth2_client_secret_file is not set" in err, err
    assert "oauth2_auth_url" in err and "must be an https:// URL" in err
    assert "oauth2_refresh_token_file is not" not in err
    d.sections["relay"]["oauth2_token_url"] = ""
    d.write_conf()
    assert "client_credentials, but oauth2_token_url is not set" in check(d.conf).stderr.decode()


def test_microsoft_rotates_the_refresh_token_at_every_refresh(login):
    d, up, srv, path = login("microsoft", up_kw={"auth_exclude": MICROSOFT_AUTH_EXCLUDE})
    with open(path, "w") as f:
        f.write("refresh-1\n")
    os.chmod(path, 0o600)
    if IS_ROOT:
        shutil.chown(path, "outbox", "outbox")
    d.start()
    send(d, ["a@r.example"])
    up.wait_for(1)
    d.wait_log(r"rotated OAuth2 refresh token stored in")
    assert_token_file(path, "refresh-2")
    d.stop()                                            # no cached token: the next refresh reads the file
    d.start()
    send(d, ["b@r.example"])
    up.wait_for(2)
    assert [g["refresh_token"] for g in srv.grants("refresh_token")] == ["refresh-1", "refresh-2"]
    assert_token_file(path, "refresh-3")
    assert srv.refresh_tokens == {"refresh-3"}          # the old ones answer invalid_grant now
    assert srv.handle("/token", {"grant_type": "refresh_token", "refresh_token": "refresh-2",
                                 "client_id": "outbox-test", "client_secret": "the-client-secret"}) \
        == (400, {"error": "invalid_grant", "error_description": "the refresh token is not valid"})
    srv.revoke()
    assert srv.handle("/token", {"grant_type": "refresh_token", "refresh_token": "refresh-3",
                                 "client_id": "outbox-test", "client_secret": "the-client-secret"})[1]["error"] \
        == "invalid_grant"
    assert all(m.login == "me@example.com" for m in up.messages)
