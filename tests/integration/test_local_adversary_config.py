"""Issue 19 point 4: root-run tools see what outboxd sees, and every
program trusts only root's configuration files.

- `sudo outbox probe` against a provider that rotates refresh tokens
  leaves the token file as it was (owner, group, mode), and outboxd then
  sends with the new token;
- a snippet owned by an ordinary user, one that names its owner as
  [queue] user, a group-writable one, a link, or an outbox.conf.d/ others
  may write is refused by outbox probe, outboxd -t and outboxd alike
  (exit 78 naming it), and its password_command never runs;
- a root start never gives away a directory it did not make (spool =
  an existing root-owned directory), nor trusts a configuration its
  daemon's user owns;
- the set-group-ID command reads a 0640 root:outbox configuration and
  snippet through its group, for an ordinary user, and reads nothing of
  the group's through -C or OUTBOX_CONF."""

import grp
import os
import pwd
import shutil
import stat
import subprocess
import time

import pytest

from conftest import IS_ROOT, OUTBOX, OUTBOXD, _outbox_gid
from test_delivery import send, wait_queue_empty
from test_oauth2 import oauth2  # noqa: F401  (the fixture)
from test_sendmail import SETGID_AS_NOBODY

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="ownership and root runs need root")

NOBODY = 65534


def outbox_ids():
    pw = pwd.getpwnam("outbox")
    return pw.pw_uid, pw.pw_gid


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


# ---- the rotated token stays outboxd's ----

@pytest.mark.parametrize("owner", ["outbox", "root:outbox"])
def test_probe_as_root_keeps_a_rotated_token_file_outboxd_s(oauth2, owner):  # noqa: F811
    """The provider rotates the refresh token at the probe's refresh: the
    new file keeps the old one's owner, group and mode (as far as the
    daemon's user may give them: a root:outbox 0640 file becomes
    outbox:outbox 0640), and outboxd reads it and sends with it."""
    d, up, srv, path = oauth2({"rotate": True}, start=False)
    uid, gid = outbox_ids()
    if owner == "root:outbox":
        os.chown(path, 0, gid)
        os.chmod(path, 0o640)
        want = (uid, gid, 0o640)          # outbox cannot give a file to root: the rest is kept
    else:
        want = (uid, gid, 0o600)
    r = subprocess.run([OUTBOX, "-C", d.conf, "probe"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "auth: XOAUTH2 as me@example.com: ok" in r.stdout, r.stdout
    assert srv.refresh_tokens == {"refresh-2"}      # the probe's refresh rotated it
    with open(path) as f:
        assert f.read() == "refresh-2\n"
    assert owner_mode(path) == want
    assert sorted(os.listdir(os.path.dirname(path))) == ["refresh"]
    d.start()
    send(d, ["a@r.example"])
    (m,) = up.wait_for(1)
    assert m.rcpt_tos == ["a@r.example"] and m.login == "me@example.com"
    assert srv.grants("refresh_token")[-1]["refresh_token"] == "refresh-2"
    wait_queue_empty(d)
    assert "status=deferred" not in d.log()


# ---- one trust rule for the configuration ----

@pytest.fixture
def planted(make_upstream, workdir):
    """A root-owned configuration whose relay offers AUTH, and in
    outbox.conf.d/ a snippet with a password_command that would leave a
    marker file; kind says what is wrong with the snippet (or its
    directory).  Returns (conf, snippet path, marker path)."""

    def make(kind):
        up = make_upstream(users={"user1": "pw"})
        marks = os.path.join(workdir, "marks")
        os.mkdir(marks)
        os.chmod(marks, 0o1777)          # whoever runs the command could leave the marker
        marker = os.path.join(marks, "ran")
        base = os.path.join(workdir, "etc")
        os.mkdir(base, 0o755)
        conf = os.path.join(base, "outbox.conf")
        with open(conf, "w") as f:
            f.write("[queue]\nspool = %s\n[listen]\nsocket = %s\ncontrol = %s\n"
                    "[relay]\nhost = localhost\nport = %d\nca_file = %s\ntls = starttls\n"
                    "timeout = 5s\n"
                    % (os.path.join(workdir, "spool"), os.path.join(workdir, "run", "s.sock"),
                       os.path.join(workdir, "run", "c.sock"), up.port, up.ca_file))
        os.chmod(conf, 0o644)
        snipdir = os.path.join(base, "outbox.conf.d")
        os.mkdir(snipdir, 0o755)
        os.chmod(snipdir, 0o755)
        text = ("[relay]\nuser = user1\npassword_command = /bin/sh -c 'touch %s; echo pw'\n" % marker)
        if kind == "names-its-owner":
            text = "[queue]\nuser = %s\n" % pwd.getpwuid(NOBODY).pw_name + text
        snippet = os.path.join(snipdir, "50-relay.conf")
        target = snippet
        if kind == "link":
            target = os.path.join(workdir, "elsewhere.conf")
            os.symlink(target, snippet)
        with open(target, "w") as f:
            f.write(text)
        os.chmod(target, 0o644)
        if kind in ("user-owned", "names-its-owner"):
            os.chown(snippet, NOBODY, NOBODY)
        elif kind == "group-writable":
            os.chmod(snippet, 0o664)
        elif kind == "open-directory":
            os.chmod(snipdir, 0o777)
        return conf, snippet, marker, up

    return make


KINDS = {"user-owned": "owned by uid %d, not by root" % NOBODY,
         "names-its-owner": "owned by uid %d, not by root" % NOBODY,
         "group-writable": "writable by its group or others",
         "link": "a symbolic link: refusing it",
         "open-directory": "writable by its group or others"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_untrusted_snippet_is_refused_by_every_program(planted, kind):
    conf, snippet, marker, up = planted(kind)
    named = os.path.dirname(snippet) if kind == "open-directory" else snippet
    want = "%s: %s" % (named, KINDS[kind])
    runs = {"outbox probe": [OUTBOX, "-C", conf, "probe"],
            "outboxd -t": [OUTBOXD, "-t", "-c", conf],
            "outboxd": [OUTBOXD, "-c", conf]}
    for what, cmd in runs.items():
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("%s accepted %s and ran" % (what, snippet))
        assert r.returncode == 78, (what, r.returncode, r.stdout, r.stderr)
        assert want in r.stderr, (what, r.stderr)
        assert not os.path.exists(marker), "%s ran the snippet's password_command" % what
    assert up.auth_attempts == []
    # the same snippet made root's own and closed passes, and then runs as outboxd would
    if kind == "link":
        target = os.readlink(snippet)
        os.unlink(snippet)
        shutil.copy(target, snippet)
    os.chmod(os.path.dirname(snippet), 0o755)
    os.chown(snippet, 0, 0)
    os.chmod(snippet, 0o644)
    if kind == "names-its-owner":
        with open(snippet) as f:
            text = f.read().split("\n", 2)[2]
        with open(snippet, "w") as f:
            f.write(text)
    r = subprocess.run([OUTBOXD, "-t", "-c", conf], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([OUTBOX, "-C", conf, "probe"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "auth: PLAIN as user1: ok" in r.stdout, r.stdout + r.stderr
    assert os.stat(marker).st_uid == outbox_ids()[0]      # probe ran it as [queue] user


def test_a_main_file_owned_by_a_user_is_refused_by_the_tools_too(workdir):
    """The main file as the snippets: an ordinary user's is refused by the
    commands that used to skip the check (outbox config, sendmail)."""
    conf = os.path.join(workdir, "user.conf")
    with open(conf, "w") as f:
        f.write("[relay]\nhost = smtp.user.example\n")
    os.chmod(conf, 0o644)
    os.chown(conf, NOBODY, NOBODY)
    for cmd in ([OUTBOX, "-C", conf, "config"], [OUTBOXD, "-t", "-c", conf],
                [OUTBOX, "-C", conf, "sendmail", "-bp"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
        assert r.returncode == 78 and "%s: owned by uid %d, not by root" % (conf, NOBODY) in r.stderr, \
            (cmd, r.stderr)
    # that user's own run trusts its own file (a user's private configuration)
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                        OUTBOX, "-C", conf, "config", "-n"], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0 and "host = smtp.user.example" in r.stdout, r.stderr


# ---- a root start gives nothing away ----

def start_fails(d):
    d.start(wait=False)
    rc = d.proc.wait(15)
    d.logf.close()
    return rc


def test_a_root_owned_spool_is_refused_not_chowned(make_daemon, workdir):
    """spool = an existing root-owned directory (think /etc): outboxd does
    not make it its user's; it says so and stops."""
    etc = os.path.join(workdir, "etc-like")
    os.mkdir(etc)
    os.chmod(etc, 0o755)
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("root:x:0:0\n")
    d = make_daemon(start=False)
    d.spool = etc
    d.sections["queue"]["spool"] = etc
    d.write_conf()
    assert start_fails(d) == 78
    assert ("%s is owned by root and outboxd did not make it: refusing to give it to user outbox"
            % etc) in d.log()
    assert owner_mode(etc) == (0, 0, 0o755)
    assert sorted(os.listdir(etc)) == ["passwd"]          # nothing made inside either


def test_a_root_start_refuses_a_configuration_its_user_owns(make_daemon, workdir):
    """The daemon's user must not steer a root start: a configuration it
    owns is refused before any directory is touched."""
    target = os.path.join(workdir, "root-dir")
    os.mkdir(target)
    os.chmod(target, 0o755)
    d = make_daemon(start=False)
    d.sections["queue"]["spool"] = target
    d.write_conf()
    uid, gid = outbox_ids()
    os.chown(d.conf, uid, gid)
    assert start_fails(d) == 78
    assert "%s: owned by uid %d, not by root" % (d.conf, uid) in d.log()
    assert owner_mode(target) == (0, 0, 0o755)


# ---- the set-group-ID command reads a 0640 configuration ----

RUNCONF = "/run/outbox-test/outbox.conf"   # the runconf build's default (Makefile RUNCONF)
# (one path for every test that uses it: they are all in xdist_group "runconf")


@pytest.fixture
def runconf():
    """The default configuration of build/tests/outbox-runconf, and its
    outbox.conf.d/; removed afterwards."""
    snipdir = os.path.join(os.path.dirname(RUNCONF), "outbox.conf.d")
    os.makedirs(os.path.dirname(RUNCONF), exist_ok=True)
    shutil.rmtree(snipdir, ignore_errors=True)
    yield RUNCONF, snipdir
    shutil.rmtree(snipdir, ignore_errors=True)
    if os.path.exists(RUNCONF):
        os.unlink(RUNCONF)


def setgid_copy(workdir):
    os.chmod(workdir, 0o755)
    copy = os.path.join(workdir, "sendmail")
    shutil.copy(os.path.join(os.path.dirname(OUTBOX), "tests", "outbox-runconf"), copy)
    os.chown(copy, 0, _outbox_gid())
    os.chmod(copy, 0o2755)
    return copy


def write_private(path, text):
    """root:outbox 0640: what the daemon and the set-group-ID command read."""
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, 0, _outbox_gid())
    os.chmod(path, 0o640)


@pytest.mark.xdist_group("runconf")
def test_sendmail_reads_a_0640_root_outbox_configuration_through_its_group(relay_daemon, workdir,
                                                                        runconf):
    """An ordinary user's sendmail works with the configuration and a
    snippet at 0640 root:outbox (the socket and spool are in the snippet
    only: the message reaching the upstream proves it was read), and the
    user cannot read either file."""
    d, up = relay_daemon()
    conf, snipdir = runconf
    main = "".join("[%s]\n%s" % (sec, "".join("%s = %s\n" % kv for kv in kv.items()
                                              if sec != "listen"))
                   for sec, kv in d.sections.items())
    write_private(conf, main)
    os.mkdir(snipdir)
    os.chmod(snipdir, 0o755)
    write_private(os.path.join(snipdir, "10-listen.conf"),
                  "[listen]\nsocket = %s\ncontrol = %s\n" % (d.socket, d.sections["listen"]["control"]))
    copy = setgid_copy(workdir)
    r = subprocess.run(SETGID_AS_NOBODY + [copy, "-i", "far@r.example"], env={"PATH": "/usr/bin:/bin"},
                       input=b"Subject: through the group\n\nbody\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r
    (m,) = up.wait_for(1)
    assert m.rcpt_tos == ["far@r.example"] and b"Subject: through the group" in m.data
    login = pwd.getpwuid(NOBODY).pw_name
    assert b"(uid %d %s)" % (NOBODY, login.encode()) in m.data[:300]
    # the user itself reads neither file
    for p in (conf, os.path.join(snipdir, "10-listen.conf")):
        c = subprocess.run(SETGID_AS_NOBODY + ["cat", p], capture_output=True)
        assert c.returncode != 0 and c.stdout == b""
    wait_queue_empty(d)


@pytest.mark.xdist_group("runconf")
def test_the_setgid_command_reads_no_group_file_named_by_the_caller(workdir, runconf):
    """-C FILE and OUTBOX_CONF name the configuration: set-group-ID, for a
    user outside the group, both are refused, so a file only the outbox
    group may read shows nothing of itself (not even through an error)."""
    secret_dir = os.path.join(workdir, "group-only")
    os.mkdir(secret_dir)
    os.chown(secret_dir, 0, _outbox_gid())
    os.chmod(secret_dir, 0o750)
    secret = os.path.join(secret_dir, "password")
    write_private(secret, "[relay]\nhost = TOPSECRET-HOST\nTOPSECRET-LINE\n")
    copy = setgid_copy(workdir)
    named = os.path.join(workdir, "outbox")
    os.link(copy, named)                       # the same binary, invoked as outbox
    env = {"PATH": "/usr/bin:/bin"}
    runs = [([copy, "-C", secret, "-bp"], env),
            ([copy, "-bp"], dict(env, OUTBOX_CONF=secret)),
            ([named, "-C", secret, "config"], env),
            ([named, "-C", secret, "sendmail", "-bp"], env),
            ([named, "config"], dict(env, OUTBOX_CONF=secret))]
    for argv, e in runs:
        r = subprocess.run(SETGID_AS_NOBODY + argv, env=e, capture_output=True, timeout=15)
        assert r.returncode == 78, (argv, r)
        assert b"TOPSECRET" not in r.stdout + r.stderr, (argv, r)
        assert b"refused while set-group-ID" in r.stderr, (argv, r)
