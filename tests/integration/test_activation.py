"""Socket activation (issue 12, point 2): outboxd takes the submission
socket systemd passes (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, fds from
3), so a client that connected while no outboxd ran is served once it
starts, and a stop leaves the socket to systemd."""

import os
import shutil
import socket
import subprocess
import time

from conftest import OUTBOXD
from test_delivery import send, wait_queue_empty


def start_activated(d, sock, names="submission", wait=True):
    """Start d's outboxd as systemd would: the socket as fd 3, the
    variables naming it, LISTEN_PID its own pid (sh execs it)."""
    fd = sock.fileno()
    d.logf = open(d.log_path, "ab")
    env = dict(os.environ, LISTEN_FDS="1")
    if names:
        env["LISTEN_FDNAMES"] = names
    d.proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$0" -c "$1"', OUTBOXD, d.conf],
                              stdout=d.logf, stderr=subprocess.STDOUT, env=env, pass_fds=(fd, 3),
                              preexec_fn=lambda: os.dup2(fd, 3))
    if wait:                                      # (it answers on d.socket)
        d.wait_started()


def bound_socket(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.geteuid() == 0:                         # as systemd's RuntimeDirectory= would be
        shutil.chown(os.path.dirname(path), "outbox", "outbox")
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(16)
    return s


def test_a_passed_socket_is_used_and_kept(relay_daemon):
    d, up = relay_daemon(start=False)
    sock = bound_socket(d.socket)
    early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    early.connect(d.socket)                        # while no outboxd runs: it waits in the backlog
    start_activated(d, sock)
    early.settimeout(10)
    assert early.recv(512).startswith(b"220 ")    # served by the outboxd that started after
    early.close()
    assert "listening on %s (passed by systemd)" % d.socket in d.log()
    send(d, ["a@r.example"], b"Subject: activated\n\nx\n")
    (m,) = up.wait_for(1)
    assert m.rcpt_tos == ["a@r.example"]
    wait_queue_empty(d)
    d.stop()
    assert os.path.exists(d.socket)                # systemd's file: not removed
    # and a second outboxd takes the same socket again
    start_activated(d, sock, names=None)           # matched by its path this time
    send(d, ["b@r.example"])
    assert [m.rcpt_tos for m in up.wait_for(2)][1] == ["b@r.example"]
    d.stop()
    sock.close()


def test_without_activation_the_socket_is_its_own(relay_daemon):
    d, up = relay_daemon()
    assert "passed by systemd" not in d.log()
    d.stop()
    assert not os.path.exists(d.socket)           # it removes what it made


def test_systemd_hears_ready_status_reloading_and_stopping(relay_daemon, workdir):
    import signal
    path = os.path.join(workdir, "notify.sock")
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.bind(path)
    os.chmod(path, 0o666)                         # outboxd writes to it as its own user
    n.settimeout(10)
    d, up = relay_daemon(start=False)
    d.prefix = ["env", "NOTIFY_SOCKET=" + path]
    d.start()

    def next_message():
        return n.recv(4096).decode()
    first = [next_message(), next_message()]
    assert first[0] == "READY=1" and first[1].startswith("STATUS=0 messages queued")
    assert "queue indexed" in d.log()             # ready once the queue is loaded
    d.proc.send_signal(signal.SIGHUP)
    assert [next_message(), next_message()] == ["RELOADING=1", "READY=1"]
    d.stop()
    assert next_message() == "STOPPING=1"
    n.close()


def test_a_socket_named_submission_elsewhere_is_used_and_the_log_says_where(relay_daemon, workdir):
    """The unit's ListenStream= may differ from [listen] socket: the
    socket named "submission" is taken, and the log names its own path
    and the configured one it replaces."""
    d, up = relay_daemon(start=False)
    other = os.path.join(os.path.dirname(d.socket), "unit.sock")
    sock = bound_socket(other)
    start_activated(d, sock, wait=False)
    d.wait_log(r"outboxd.* started,")
    assert ("listening on %s (passed by systemd as 'submission'; [listen] socket = %s is not used)"
            % (other, d.socket)) in d.log()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(other)
    assert c.recv(512).startswith(b"220 ")
    c.close()
    d.stop()
    sock.close()
