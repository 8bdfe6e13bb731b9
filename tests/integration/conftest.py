"""pytest rig for outbox: a temporary spool and configuration, the real
outboxd and outbox binaries, and the aiosmtpd upstream of upstream.py.

Run through `make check` (which sets OUTBOX_BUILD to the build folder).
When the tests run as root, outboxd drops to the system user `outbox`
exactly as in production; the test folders are made traversable for it.
"""

import collections
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import upstream as upstream_mod  # noqa: E402


def pytest_configure(config):
    """make check runs the suite in two passes (Makefile "integration"):
    the tests not marked serial on several pytest-xdist workers at once,
    then the serial ones alone.  Every test has its own folder, spool,
    sockets and ports (the kernel's), so most need nothing more."""
    config.addinivalue_line(
        "markers", "serial: runs alone, in make check's second pass: it asserts on how long "
        "something took or on memory, or loads the machine enough to disturb another test's")
    config.addinivalue_line(
        "markers", "slow(seconds): takes 10 s or more (mostly waiting): started first, the "
        "longest first, so that in a parallel run it does not end last")
    config.addinivalue_line(
        "markers", "xdist_group(name): tests sharing a fixed path outside their folder (e.g. "
        "/run/outbox-test, build/tests/outbox-runconf's default configuration) run one after "
        "another on one worker")

BUILD = os.environ.get("OUTBOX_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
OUTBOXD = os.path.abspath(os.path.join(BUILD, "outboxd"))
OUTBOX = os.path.abspath(os.path.join(BUILD, "outbox"))
MKQUEUE = os.path.abspath(os.path.join(BUILD, "tests", "mkqueue"))


def bucket_of(qid):
    """The bucket of a queue ID, as common/queue.c qid_bucket()."""
    h = 2166136261
    for c in qid[:16].encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return "%02X" % ((h ^ (h >> 16)) % 256)


def queue_paths(spool):
    """{queue ID: path} of the messages in spool's buckets.  A directory
    read while a file in it is renamed may miss it: read until two
    readings agree."""
    last = None
    for _ in range(20):
        now = _queue_paths_once(spool)
        if now == last:
            break
        last = now
    return now


def _queue_paths_once(spool):
    top = os.path.join(spool, "queue")
    out = {}
    if not os.path.isdir(top):
        return out
    for b in os.listdir(top):
        bucket = os.path.join(top, b)
        if len(b) != 2 or not os.path.isdir(bucket):
            continue
        for name in os.listdir(bucket):
            out[name[:16]] = os.path.join(bucket, name)
    return out
IS_ROOT = os.geteuid() == 0


free_port = upstream_mod.free_port


class UnixSMTP(smtplib.SMTP):
    """smtplib over outboxd's Unix socket."""

    def __init__(self, path, timeout=30):
        self._path = path
        super().__init__(timeout=timeout)
        self.connect("localhost")

    def _get_socket(self, host, port, timeout):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self._path)
        return s


class RawClient:
    """A byte-level SMTP client for malformed input."""

    def __init__(self, path=None, tcp=None, timeout=10):
        if path:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(path)
        else:
            self.s = socket.create_connection(tcp, timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.s.sendall(data)

    def reply(self):
        """One complete reply as (code, text-bytes)."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.rstrip(b"\r"))
            if len(line) < 4 or line[3:4] == b" ":
                return int(lines[-1][:3]), b"\n".join(lines)

    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self, timeout=5):
        """True once the server closed the connection."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class Daemon:
    """One outboxd with its own folder, configuration and log."""

    def __init__(self, base, extra=None, tcp=False):
        self.base = base
        self.spool = os.path.join(base, "spool")
        self.run_dir = os.path.join(base, "run")
        self.socket = os.path.join(self.run_dir, "outbox.sock")
        self.conf = os.path.join(base, "outbox.conf")
        self.log_path = os.path.join(base, "outboxd.log")
        self.tcp_port = free_port() if tcp else None
        self.proc = None
        self.prefix = []  # a command to run outboxd under (e.g. unshare)
        self.sections = {
            # min_free: the test machine's disk may be nearly full itself
            "queue": {"spool": self.spool, "min_free": "1M"},
            "listen": {"socket": self.socket, "control": os.path.join(self.run_dir, "control.sock")},
            "relay": {"host": "127.0.0.1", "port": "1", "tls": "starttls"},
            "address": {"domain": "client.example"},
            "log": {"target": "stderr", "level": "info"},
        }
        if tcp:
            self.sections["listen"]["tcp"] = "127.0.0.1:%d" % self.tcp_port
        for sec, kv in (extra or {}).items():
            self.sections.setdefault(sec, {}).update(kv)
        self.write_conf()

    def write_conf(self):
        with open(self.conf, "w") as f:
            for sec, kv in self.sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf, 0o644)

    def relay_to(self, up):
        """From the next start, relay to the upstream up."""
        self.sections["relay"]["port"] = str(up.port)
        self.write_conf()

    def deliver_to(self, up, n, timeout=120):
        """Restart relaying to up, wait for n messages there (and a
        second for any extra); how many each recipient got."""
        self.stop()
        self.relay_to(up)
        self.start()
        up.wait_for(n, timeout=timeout)
        time.sleep(1)
        return collections.Counter(m.rcpt_tos[0] for m in up.messages)

    def start(self, wait=True):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.prefix + [OUTBOXD, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_started()
        return self

    def wait_started(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("outboxd exited %s:\n%s" % (self.proc.returncode, self.log()))
            if "started," in self.log().split("outboxd", 1)[-1] and self._answers():
                return
            time.sleep(0.02)
        raise AssertionError("outboxd did not start:\n" + self.log())

    def _answers(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(self.socket)
            s.recv(100)
            s.close()
            return True
        except OSError:
            return False

    def _outboxd_pid(self):
        """The pid of outboxd itself: under a prefix (strace, unshare)
        self.proc is the wrapper, and strace detaches on SIGTERM, leaving
        outboxd running; the spool's lock file names the daemon."""
        if not self.prefix:
            return self.proc.pid
        try:
            pid = int(open(os.path.join(self.spool, "lock")).read())
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "outboxd":
                    return pid
        except (OSError, ValueError):
            pass
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            os.kill(self._outboxd_pid(), sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("outboxd did not stop on %s" % sig)
        if self.proc:
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        os.kill(self._outboxd_pid(), signal.SIGKILL)
        self.proc.wait()
        self.logf.close()

    def wait_log(self, pattern, timeout=20, count=1):
        """Wait until the log has count lines matching the regex pattern."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return
            time.sleep(0.05)
        raise AssertionError("no %r (x%d) in log:\n%s" % (pattern, count, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def smtp(self, **kw):
        return UnixSMTP(self.socket, **kw)

    def raw(self, **kw):
        return RawClient(path=self.socket, **kw)

    def queue_paths(self):
        """{queue ID: path} of the queued messages (queue/XX/NAME, NAME
        the ID or ID.NEXT.TRIES)."""
        return queue_paths(self.spool)

    def queue_ids(self):
        return sorted(self.queue_paths())

    def queue_path(self, qid):
        return self.queue_paths()[qid]

    def queue_file(self, qid):
        return self.on_queue_file(qid, lambda p: open(p, "rb").read())

    def remove_queued(self, qid):
        """Take a message out of the queue behind the daemon's back."""
        self.on_queue_file(qid, os.unlink)

    def on_queue_file(self, qid, fn):
        """fn(path of qid's file); a deferral renames the file (queue.c
        FILE NAME) at any time: then look again."""
        for _ in range(50):
            try:
                return fn(self.queue_path(qid))
            except (FileNotFoundError, KeyError):
                time.sleep(0.01)
        return fn(self.queue_path(qid))

    def parse_queue_file(self, qid):
        """(envelope dict, message bytes) of a queued message."""
        data = self.queue_file(qid)
        head, body = data.split(b"\nend\n", 1)
        env = {"rcpt": []}
        for line in head.decode().split("\n")[1:]:
            key, val = line.split(" ", 1)
            if key == "rcpt":   # "Q <addr>", and in version 2 " notify=.. orcpt=.." after it
                status, addr, _ = re.fullmatch(r"(\S) <(.*?)>((?: [a-z]+=\S*)*)", val).groups()
                env["rcpt"].append((status, addr))
            elif key == "from":
                env["from"] = val[1:-1]
            else:
                env[key] = val
        return env, body

    def command(self, args, argv0=None, user=None):
        """The outbox binary with args, invoked as argv0 (a link of that
        name, e.g. sendmail or mailq) and as user (a uid) when given."""
        cmd = [OUTBOX] + list(args)
        if argv0:
            link = os.path.join(self.base, argv0)
            if not os.path.exists(link):
                os.symlink(OUTBOX, link)
            cmd = [link] + list(args)
        if user is not None:
            cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
        return cmd

    def sendmail(self, args, data, argv0=None, user=None, env=None, timeout=60):
        """Run the sendmail command; returns CompletedProcess."""
        e = dict(os.environ, OUTBOX_CONF=self.conf)
        e.update(env or {})
        cmd = self.command(list(args) if argv0 else ["sendmail"] + list(args), argv0, user)
        return subprocess.run(cmd, input=data, capture_output=True, env=e, timeout=timeout)

    def outbox(self, *args, argv0=None, user=None, timeout=60):
        """Run `outbox ARGS` (text output); returns CompletedProcess."""
        return subprocess.run(self.command(args, argv0, user), capture_output=True, text=True,
                              timeout=timeout, env=dict(os.environ, OUTBOX_CONF=self.conf))


def pytest_collection_modifyitems(items):
    """The slow tests first, the longest first (a stable sort: the order
    is the same on every worker, as pytest-xdist requires): a worker that
    took one at the end would keep the others waiting."""
    def seconds(item):
        m = item.get_closest_marker("slow")
        return -m.args[0] if m else 0
    items.sort(key=seconds)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="outbox-test-")
    os.chmod(d, 0o755)  # the daemon's user must reach its spool
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_daemon(workdir):
    started = []

    def make(extra=None, tcp=False, start=True, name="d"):
        base = os.path.join(workdir, name)
        os.makedirs(base)
        os.chmod(base, 0o755)
        d = Daemon(base, extra=extra, tcp=tcp)
        started.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in started:
        try:
            d.stop()
        except Exception:
            pass
    for d in started:  # shown by pytest when the test failed
        print("---- outboxd log %s\n%s" % (d.base, d.log()))
    for d in started:  # a sanitizer build reports into the daemon's log
        for marker in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:"):
            assert marker not in d.log(), d.log()


@pytest.fixture
def daemon(make_daemon):
    return make_daemon()


def _new_certs():
    d = tempfile.mkdtemp(prefix="outbox-certs-")
    os.chmod(d, 0o755)  # outboxd's user reads ca.pem
    return upstream_mod.make_certs(d)


@pytest.fixture(scope="session")
def certs():
    shared = os.environ.get("OUTBOX_TEST_CERTS")
    if shared:          # the parallel run's, made once (pytest_sessionstart)
        yield shared
        return
    d = _new_certs()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _parallel_controller(config):
    """This process hands tests to pytest-xdist workers."""
    return not hasattr(config, "workerinput") and (config.getoption("numprocesses", None) or 0) > 0


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """A parallel run makes the test CA and certificates once, before its
    workers start (they inherit the variable): eight workers making their
    own at once took 8 s of the first tests' time."""
    if _parallel_controller(session.config):
        os.environ["OUTBOX_TEST_CERTS"] = _new_certs()


def pytest_sessionfinish(session):
    if _parallel_controller(session.config) and os.environ.get("OUTBOX_TEST_CERTS"):
        shutil.rmtree(os.environ.pop("OUTBOX_TEST_CERTS"), ignore_errors=True)


@pytest.fixture
def make_upstream(certs):
    ups = []

    def make(**kw):
        u = upstream_mod.Upstream(certs, **kw).start()
        ups.append(u)
        return u

    yield make
    for u in ups:
        u.stop()


@pytest.fixture
def relay_daemon(make_daemon, make_upstream, workdir):
    """An upstream and an outboxd relaying to it: returns (daemon, upstream)."""

    def make(up_kw=None, relay=None, extra=None, password="secret-pw", start=True, name="d"):
        up_kw = dict(up_kw or {})
        up_kw.setdefault("users", {"user1": password})
        up = make_upstream(**up_kw)
        r = {"host": "localhost", "port": str(up.port), "ca_file": up.ca_file,
             "tls": {"starttls": "starttls", "implicit": "tls", "none": "none"}[up.tls],
             "workers": "2", "timeout": "10s"}
        if password is not None and "user" not in (relay or {}):
            pw = os.path.join(workdir, name + "-password")
            with open(pw, "w") as f:
                f.write(password + "\n")
            os.chmod(pw, 0o640)
            if IS_ROOT:
                os.chown(pw, 0, _outbox_gid())
            r.update(user="user1", password_file=pw)
        r.update(relay or {})
        ex = {"relay": r, "queue": {"retry_min": "1s", "retry_max": "4s"}}
        for k, v in (extra or {}).items():
            ex.setdefault(k, {}).update(v)
        d = make_daemon(extra=ex, start=start, name=name)
        return d, up

    return make


def _outbox_gid():
    import grp
    return grp.getgrnam("outbox").gr_gid
