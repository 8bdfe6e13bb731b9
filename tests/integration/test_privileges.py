"""outboxd started as root prepares its directories and becomes the
`outbox` user: it must never follow a link the daemon's user could have
planted in the spool it owns, never use a directory someone else owns,
and never take over a socket directory it did not make (daemon/privs.c)."""

import os
import stat

import pytest

from conftest import IS_ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="root start needs root")


def victim(workdir, name="shadow"):
    """A root-owned file that must stay as it is (a stand-in for /etc/shadow)."""
    p = os.path.join(workdir, name)
    with open(p, "w") as f:
        f.write("root:secret\n")
    os.chmod(p, 0o600)
    os.chown(p, 0, 0)
    return p


def start_fails(d):
    d.start(wait=False)
    rc = d.proc.wait(15)
    d.logf.close()
    return rc


@pytest.mark.parametrize("sub", ["pickup/bad", "pickup", "queue", "tmp", "corrupt"])
def test_a_link_in_the_spool_is_refused_and_not_followed(make_daemon, workdir, sub):
    d = make_daemon()               # makes the spool as outbox's
    d.stop()
    target = victim(workdir)
    path = os.path.join(d.spool, sub)
    os.rename(path, path + ".old")
    os.symlink(target, path)        # what the outbox user can do in its spool
    assert start_fails(d) == 78
    assert "%s is a symbolic link or not a directory: refusing to use it" % path in d.log()
    st = os.stat(target)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


def test_a_link_to_a_directory_is_refused_too(make_daemon, workdir):
    d = make_daemon()
    d.stop()
    etc = os.path.join(workdir, "etc")
    os.mkdir(etc, 0o755)
    path = os.path.join(d.spool, "pickup", "new")
    os.rename(path, path + ".old")
    os.symlink(etc, path)
    assert start_fails(d) == 78
    assert os.stat(etc).st_uid == 0 and "refusing to use it" in d.log()


def test_a_spool_directory_owned_by_someone_else_is_refused(make_daemon):
    d = make_daemon()
    d.stop()
    path = os.path.join(d.spool, "corrupt")
    os.chown(path, 12345, 12345)
    assert start_fails(d) == 78
    assert "%s is owned by uid 12345, neither root nor the daemon's user" % path in d.log()
    assert os.stat(path).st_uid == 12345


def test_an_existing_socket_directory_is_not_taken_over(make_daemon, workdir):
    """socket = /run/outbox.sock must not chown /run: a directory outboxd
    did not make stays root's; one it makes is the daemon's."""
    shared = os.path.join(workdir, "shared-run")
    os.mkdir(shared)
    os.chmod(shared, 0o1777)        # like /tmp: the daemon may bind in it
    d = make_daemon(start=False)
    d.socket = os.path.join(shared, "outbox.sock")
    d.sections["listen"]["socket"] = d.socket
    d.write_conf()
    d.start()
    st = os.stat(shared)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o1777)
    with d.smtp() as s:             # and it works
        assert s.noop()[0] == 250
    made = os.path.dirname(d.sections["listen"]["control"])
    assert os.stat(made).st_uid != 0  # the control socket's directory, made here


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root start")
def test_started_as_root_it_runs_as_outbox_in_every_thread_and_delivers(relay_daemon):
    import pwd
    from test_delivery import send, wait_queue_empty
    d, up = relay_daemon()
    pw = pwd.getpwnam("outbox")
    send(d, ["a@r.example"])
    assert [m.rcpt_tos for m in up.wait_for(1)] == [["a@r.example"]]
    wait_queue_empty(d)
    pid = d.proc.pid
    tasks = os.listdir("/proc/%d/task" % pid)
    assert len(tasks) > 2                         # the loop, the workers, the thread pool
    for t in tasks:
        with open("/proc/%d/task/%s/status" % (pid, t)) as f:
            st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        # real, effective, saved and file-system ids
        assert st["Uid"].split() == [str(pw.pw_uid)] * 4, (t, st["Uid"])
        assert st["Gid"].split() == [str(pw.pw_gid)] * 4, (t, st["Gid"])
        assert st["Groups"].split() == [str(pw.pw_gid)], (t, st["Groups"])
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0


def test_the_spool_outboxd_makes_is_the_one_tmpfiles_makes(make_daemon):
    """systemd/outbox.tmpfiles and outboxd's own spool_layout must agree:
    on a packaged system tmpfiles makes the spool first, elsewhere outboxd
    does; either way every directory has the same owner and mode."""
    import pwd
    top = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    want = {}
    with open(os.path.join(top, "systemd", "outbox.tmpfiles")) as f:
        for line in f:
            if line.startswith("d /var/spool/outbox"):
                _, path, mode, user, group, _ = line.split()
                want[path[len("/var/spool/outbox"):]] = (int(mode, 8), user, group)
    assert len(want) >= 10
    d = make_daemon()               # started as root: makes the spool, becomes outbox
    outbox = pwd.getpwnam("outbox")
    got = {}
    for sub in want:
        st = os.lstat(d.spool + sub)
        assert stat.S_ISDIR(st.st_mode), sub
        got[sub] = (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
                    __import__("grp").getgrgid(st.st_gid).gr_name)
    assert got == want
    made = {"/" + n for n in os.listdir(d.spool) if os.path.isdir(os.path.join(d.spool, n))}
    made |= {"/pickup/" + n for n in os.listdir(d.spool + "/pickup")}
    assert made | {""} == set(want), made ^ set(want)   # the same directories (buckets aside)
    assert outbox.pw_uid == os.stat(d.spool).st_uid


def test_it_starts_under_restrict_suid_sgid(relay_daemon, make_daemon):
    """outboxd.service has RestrictSUIDSGID=yes: a mkdir whose mode has
    the set-group-ID bit fails with EPERM even where the directory is
    (outboxd did not start under systemd).  As root and as the outbox
    user, with the spool there it starts and delivers; a pickup
    directory it must make itself lacks the bit, and it says so."""
    import sys
    PY = sys.executable
    helper = os.path.join(os.path.dirname(__file__), "restrict_suid_sgid.py")
    d, up = relay_daemon()          # as root: makes the spool, set-group-ID pickup/
    d.stop()
    as_outbox = ["setpriv", "--reuid=outbox", "--regid=outbox", "--clear-groups"]
    for prefix in ([PY, helper], as_outbox + [PY, helper]):
        d.prefix = prefix
        d.start()
        assert d.sendmail(["-f", "me@sender.example", "a@r.example"], b"Subject: x\n\nx\n").returncode == 0
        up.wait_for(1 if prefix[0] == PY else 2)
        d.stop()
    bad = os.path.join(d.spool, "pickup", "bad")
    os.rmdir(bad)
    d.start()                       # as outbox, under the filter: makes pickup/bad itself
    st = os.stat(bad)
    assert stat.S_IMODE(st.st_mode) == 0o750 and pwd_name(st.st_uid) == "outbox"
    assert "%s is not set-group-ID" % bad in d.log()
    d.stop()
    d.prefix = []
    os.rmdir(bad)
    d.start()                       # without the filter it is set-group-ID again
    assert stat.S_IMODE(os.stat(bad).st_mode) == 0o2750
    d.stop()


def pwd_name(uid):
    import pwd
    return pwd.getpwuid(uid).pw_name
