"""The sendmail command's fallback never acknowledges mail that outboxd
cannot take (issue 19, point 3): when outboxd is down the command writes
the message into SPOOL/pickup/ itself, and then

- the file is 0640 and of the daemon's group whatever the caller's
  umask, so outboxd can read it (not: moved to pickup/bad/ after exit 0);
- below [queue] min_free (counting the message) it exits 75 and leaves
  nothing;
- it falls back only when the daemon is down (no socket, or nobody
  listening): a socket whose mode refuses the user (EACCES) is exit 77,
  and nothing is queued;
- the envelope is the command's own: a message that begins with
  X-Receiver: or X-Sender: lines cannot add a recipient or spoil the
  file.

And under socket activation outboxd says when the passed socket's mode
is not [listen] socket_mode (the unit's SocketMode= decides)."""

import grp
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import IS_ROOT
from test_activation import bound_socket, start_activated
from test_full_disk import small_spool  # noqa: F401 (a fixture)

needs_root = pytest.mark.skipif(not IS_ROOT, reason="outboxd must run as another user than the caller")


def pickup(d, sub):
    path = os.path.join(d.spool, "pickup", sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def delivered_alone(d, up):
    """The one message the upstream got once outboxd ran (and no other
    in the second after); pickup/ is empty again, nothing in bad/."""
    d.start()
    (m,) = up.wait_for(1)
    time.sleep(1)
    assert len(up.messages) == 1, [x.rcpt_tos for x in up.messages]
    assert pickup(d, "new") == [] and pickup(d, "bad") == [], d.log()
    return m


@needs_root
def test_fallback_under_umask_077_is_delivered(relay_daemon):
    """Root's sendmail under umask 077 while outboxd (user outbox) is
    down: the file is 0640 of group outbox, and it is delivered (it was
    0600, outboxd could not open it and moved it to pickup/bad/)."""
    d, up = relay_daemon()
    d.stop()
    cmd = d.command(["sendmail", "-i", "-f", "me@s.example", "u@r.example"])
    r = subprocess.run(cmd, input=b"Subject: umask\n\nprivate umask\n", capture_output=True,
                       env=dict(os.environ, OUTBOX_CONF=d.conf), preexec_fn=lambda: os.umask(0o077))
    assert r.returncode == 0, r
    (name,) = pickup(d, "new")
    st = os.lstat(os.path.join(d.spool, "pickup", "new", name))
    assert (st.st_mode & 0o7777, st.st_gid) == (0o640, grp.getgrnam("outbox").gr_gid)
    m = delivered_alone(d, up)
    assert m.rcpt_tos == ["u@r.example"] and m.data.endswith(b"\r\n\r\nprivate umask\r\n")


def refused_for_room(r, d):
    assert r.returncode == 75, r
    assert b"min_free" in r.stderr and len(r.stderr.strip().split(b"\n")) == 1, r.stderr
    assert pickup(d, "new") == [] and pickup(d, "tmp") == []


def test_fallback_below_min_free_exits_75_and_leaves_nothing(relay_daemon):
    d, up = relay_daemon(extra={"queue": {"min_free": "500G"}})
    d.stop()
    r = d.sendmail(["-i", "a@r.example"], b"Subject: big\n\n" + b"x" * 2000000 + b"\n")
    refused_for_room(r, d)


@needs_root
def test_fallback_counts_the_message_against_min_free(relay_daemon, small_spool):  # noqa: F811
    """On an 8 MB spool with min_free 4M: a 5 MB message would leave
    less than min_free (75, nothing left), a 1 MB one does not (queued,
    delivered)."""
    subprocess.run(["mount", "-o", "remount,size=8m", small_spool], check=True)
    d, up = relay_daemon(start=False)
    d.spool = os.path.join(small_spool, "spool")
    d.sections["queue"].update(spool=d.spool, min_free="4M")
    d.write_conf()
    d.start()
    d.stop()
    r = d.sendmail(["-i", "big@r.example"], b"Subject: big\n\n" + (b"y" * 99 + b"\n") * 50000)
    refused_for_room(r, d)
    r = d.sendmail(["-i", "small@r.example"], b"Subject: small\n\n" + (b"z" * 99 + b"\n") * 10000)
    assert r.returncode == 0, r
    assert delivered_alone(d, up).rcpt_tos == ["small@r.example"]


@needs_root
@pytest.mark.parametrize("groups", ["in outboxd's group", "outside it"])
def test_a_socket_that_refuses_the_user_is_exit_77_and_nothing_queued(relay_daemon, groups):
    """socket_mode 0600: the socket is outbox's alone.  Another user is
    refused by it: exit 77 with the reason, no fallback (one in outboxd's
    group, who may write into pickup/, got exit 0 and was queued; one
    outside it exit 75, "not reachable")."""
    d, up = relay_daemon(extra={"listen": {"socket_mode": "0600"}})
    assert os.stat(d.socket).st_mode & 0o777 == 0o600
    member = groups == "in outboxd's group"
    cmd = ["setpriv", "--reuid=65534", "--regid=65534",
           "--groups=%d" % grp.getgrnam("outbox").gr_gid if member else "--clear-groups"]
    cmd += d.command(["sendmail", "-i", "v@r.example"])
    r = subprocess.run(cmd, input=b"Subject: refused\n\nx\n", capture_output=True,
                       env=dict(os.environ, OUTBOX_CONF=d.conf))
    assert r.returncode == 77, r
    assert b"refuses this user" in r.stderr and b"socket_mode" in r.stderr, r.stderr
    assert len(r.stderr.strip().split(b"\n")) == 1
    time.sleep(2.5)                                # a pickup rescan would have found a file
    assert pickup(d, "new") == [] and pickup(d, "tmp") == [] and d.queue_ids() == []
    assert up.messages == []


@pytest.mark.parametrize("down", ["no socket", "nobody listening"])
def test_daemon_down_still_falls_back(relay_daemon, down):
    """ENOENT and ECONNREFUSED are "outboxd is down": the fallback."""
    d, up = relay_daemon()
    d.stop()
    stale = None
    if down == "nobody listening":                 # a dead daemon's socket file
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(d.socket)
        stale.close()
        assert os.path.exists(d.socket)
    else:
        assert not os.path.exists(d.socket)
    r = d.sendmail(["-i", "-v", "later@r.example"], b"Subject: later\n\nx\n")
    assert r.returncode == 0, r
    assert b"left in pickup/new/" in r.stderr
    assert delivered_alone(d, up).rcpt_tos == ["later@r.example"]


@pytest.mark.parametrize("lead", [b"X-Receiver: victim@r.example\n",
                                  b"x-receiver:<victim@r.example>\nX-Sender: evil@s.example\n",
                                  b"X-Sender: not an address\n"])
def test_a_message_cannot_supply_the_fallback_envelope(relay_daemon, lead):
    """A message that begins with X-Receiver:/X-Sender: lines, left in
    pickup/ by the fallback, reaches the command's recipients only, from
    the command's sender (it added victim@ as a hidden recipient, or went
    to pickup/bad/ after exit 0 for a bad X-Sender: line); the lines stay
    in the message as header fields."""
    d, up = relay_daemon()
    d.stop()
    r = d.sendmail(["-i", "-f", "me@s.example", "meant@r.example"],
                   lead + b"Subject: inj\n\nbody\n")
    assert r.returncode == 0, r
    m = delivered_alone(d, up)
    assert (m.mail_from, m.rcpt_tos) == ("me@s.example", ["meant@r.example"])
    head = m.data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    for line in lead.splitlines():
        assert b"\r\n" + line + b"\r\n" in head, m.data[:400]
    assert m.data.endswith(b"\r\n\r\nbody\r\n")


WARNING = ("the submission socket %s passed by systemd has mode %s, not [listen] socket_mode = %s:"
           " the unit's SocketMode= decides who may submit")


@pytest.mark.parametrize("socket_mode", ["0600", "0666"])
def test_activation_says_when_the_passed_socket_mode_is_not_socket_mode(relay_daemon, socket_mode):
    """Under socket activation the socket's file is systemd's (0666 here):
    a socket_mode that differs is said at start and at each reload; one
    that agrees is not."""
    d, up = relay_daemon(start=False, extra={"listen": {"socket_mode": socket_mode}})
    sock = bound_socket(d.socket)
    start_activated(d, sock)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded")
    text = WARNING % (d.socket, "0666", socket_mode)
    assert d.log().count(text) == (2 if socket_mode == "0600" else 0), d.log()
    assert os.stat(d.socket).st_mode & 0o777 == 0o666   # systemd's file: left as it is
    d.stop()
    sock.close()
