"""outboxd -t: exit 0 for a good configuration, 78 with file, line and key
for a bad one; the daemon refuses to start on a bad one."""

import os
import signal
import subprocess
import time

from conftest import OUTBOXD


def check(path, *extra):
    return subprocess.run([OUTBOXD, "-t", "-c", path] + list(extra), capture_output=True, timeout=10)


def write(tmp, text, name="c.conf", mode=0o644):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def test_good_config_exits_0_and_dumps(workdir):
    p = write(workdir, "[relay]\nhost = smtp.gmail.com\nport = 587\n[queue]\nlifetime = 3d\n")
    r = check(p)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b""
    r = check(p, "-v")
    assert r.returncode == 0
    assert b"host = smtp.gmail.com" in r.stdout and b"lifetime = 3d" in r.stdout
    assert b"retry_max = 1h" in r.stdout        # defaults shown


def test_bad_config_exits_78_naming_file_line_key(workdir):
    p = write(workdir, "[queue]\nlifetime = 5 days\n[relay]\nprot = 587\n")
    r = check(p)
    assert r.returncode == 78
    assert (p + ":2: [queue] lifetime").encode() in r.stderr
    assert (p + ":4: [relay] prot: unknown key").encode() in r.stderr


def test_password_file_readable_by_others(workdir):
    secret = write(workdir, "s3cret-pw\n", name="pw", mode=0o644)
    p = write(workdir, "[relay]\nuser = me\npassword_file = %s\n" % secret)
    r = check(p)
    assert r.returncode == 78
    assert b"readable by others" in r.stderr and b":3: [relay] password_file" in r.stderr
    assert b"s3cret-pw" not in r.stderr
    os.chmod(secret, 0o600)
    assert check(p).returncode == 0


def test_missing_file(workdir):
    r = check(os.path.join(workdir, "nope.conf"))
    assert r.returncode == 78 and b"nope.conf" in r.stderr


def test_daemon_refuses_bad_config(make_daemon):
    d = make_daemon(extra={"queue": {"bogus": "1"}}, start=False)
    r = subprocess.run([OUTBOXD, "-c", d.conf], capture_output=True, timeout=10)
    assert r.returncode == 78 and b"[queue] bogus: unknown key" in r.stderr


def test_sighup_reload_keeps_running_on_bad_config(daemon):
    with open(daemon.conf, "a") as f:
        f.write("[nonsense]\nx = 1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reload failed, keeping the running configuration")
    # each error a log line of its own, not one line with escaped newlines
    daemon.wait_log(r"(?m)reload: [^\n]*\[nonsense\][^\n]*$")
    assert "\\x0A" not in daemon.log()
    daemon.sections["queue"]["max_recipients"] = "7"
    daemon.write_conf()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded")
    assert daemon.proc.poll() is None
    with daemon.smtp() as s:
        s.ehlo("x")
        s.mail("a@s.example")
        for i in range(7):
            assert s.rcpt("r%d@r.example" % i)[0] == 250
        assert s.rcpt("r7@r.example")[0] == 452   # the new limit applies


def test_version_and_usage():
    r = subprocess.run([OUTBOXD, "-V"], capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"outboxd ")
    r = subprocess.run([OUTBOXD, "-x"], capture_output=True)
    assert r.returncode == 64


def test_second_daemon_on_same_spool_refused(daemon):
    r = subprocess.run([OUTBOXD, "-c", daemon.conf], capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"in use" in r.stderr
    assert daemon.proc.poll() is None


def test_every_problem_is_reported_however_many(workdir):
    """40 bad lines: all 40 are named (the list was cut at 512 octets)."""
    text = "[relay]\n" + "".join("no_such_key_%02d = x\n" % i for i in range(40))
    p = write(workdir, text)
    r = check(p)
    assert r.returncode == 78
    for i in range(40):
        assert ("%s:%d: [relay] no_such_key_%02d: unknown key" % (p, i + 2, i)).encode() in r.stderr


def test_config_file_writable_by_others_is_refused(workdir):
    """password_command runs from the file: nobody but root (or, for a
    run that is not root's, its own user) may be able to change it."""
    p = write(workdir, "[relay]\nhost = smtp.example.org\n", mode=0o664)
    r = check(p)
    assert r.returncode == 78
    assert ("%s: writable by its group or others: refusing a configuration that may run "
            "password_command (chmod go-w %s)" % (p, p)).encode() in r.stderr
    os.chmod(p, 0o646)
    assert check(p).returncode == 78
    os.chmod(p, 0o644)
    assert check(p).returncode == 0
    if os.geteuid() == 0:
        os.chown(p, 12345, 0)
        r = check(p)
        assert r.returncode == 78 and b"owned by uid 12345, not by root: refusing" in r.stderr


def test_tcp_listener_off_loopback_needs_explicit_consent(workdir, make_daemon):
    """Anyone reaching a TCP listener relays through the authenticated
    upstream: an address other than loopback is refused unless
    tcp_allow_remote = yes, and then warned about."""
    for addr, ok in [("127.0.0.1:2525", True), ("127.9.9.9:2525", True), ("[::1]:2525", True),
                     ("0.0.0.0:2525", False), ("[::]:2525", False), ("192.0.2.1:25", False)]:
        p = write(workdir, "[listen]\ntcp = %s\n[relay]\nhost = x.example\n" % addr)
        r = check(p)
        assert (r.returncode == 0) == ok, (addr, r.stderr)
        if not ok:
            assert (p + ":2: [listen] tcp: %s is not a loopback address" % addr).encode() in r.stderr
            p = write(workdir, "[listen]\ntcp = %s\ntcp_allow_remote = yes\n[relay]\nhost = x.example\n"
                      % addr)
            assert check(p).returncode == 0
    d = make_daemon(start=False)
    from conftest import free_port
    d.sections["listen"].update(tcp="0.0.0.0:%d" % free_port(), tcp_allow_remote="yes")
    d.write_conf()
    d.start()
    assert "is not loopback (tcp_allow_remote = yes): whoever reaches it can relay" in d.log()


def test_outbox_config_prints_the_effective_configuration(workdir):
    """outbox config: every key of the table with its value, '# default'
    after those that are; -n the changed ones only; a secret never shown."""
    from conftest import OUTBOX, OUTBOXD
    conf = os.path.join(workdir, "c.conf")
    with open(conf, "w") as f:
        f.write("[queue]\nlifetime = 2d\n[relay]\nhost = smtp.gmail.com\nuser = me@gmail.com\n"
                "password_command = printf hunter2-secret\n[aliases]\nroot = ops@example.org\n")
    os.chmod(conf, 0o600)
    run = lambda *a: subprocess.run([OUTBOX, "-C", conf, "config"] + list(a), capture_output=True,
                                    text=True)
    n = run("-n")
    assert n.returncode == 0, n.stderr
    assert n.stdout == ("[queue]\nlifetime = 2d\n\n[relay]\nhost = smtp.gmail.com\nuser = me@gmail.com\n"
                        "password_command = (set)\n\n[aliases]\nroot = ops@example.org\n")
    full = run()
    assert "hunter2" not in full.stdout + n.stdout
    keys = [l.split(" = ")[0] for l in full.stdout.splitlines() if " = " in l]
    dump = subprocess.run([OUTBOXD, "-t", "-v", "-c", conf], capture_output=True, text=True)
    assert keys == [l.split(" = ")[0] for l in dump.stdout.splitlines() if " = " in l]
    assert "\nretry_min = 1m    # default\n" in full.stdout
    assert "\nlifetime = 2d\n" in full.stdout and "[senders]    # empty" in full.stdout
    assert run("-x").returncode == 64


def test_the_example_config_shows_every_key(workdir):
    """conf/outbox.conf (installed as the example) names every key of the
    table, commented out, under its section."""
    from conftest import OUTBOX
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(top, "conf", "outbox.conf")) as f:
        example = f.read()
    empty = os.path.join(workdir, "empty.conf")
    open(empty, "w").close()
    out = subprocess.run([OUTBOX, "-C", empty, "config"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    section, checked = None, 0
    for line in out.stdout.splitlines():
        if line.startswith("["):
            section = line.split("]")[0] + "]"
            continue
        if " = " not in line or section in ("[aliases]", "[senders]"):
            continue
        key = line.split(" = ")[0]
        body = example.split(section + "\n", 1)[1].split("\n[", 1)[0]
        assert ";%s =" % key in body or "\n%s =" % key in body, (section, key)
        checked += 1
    assert checked >= 30


def test_conf_d_snippets_are_read_in_name_order_after_the_file(workdir):
    """outbox.conf.d/*.conf beside the file, in name order: a later value
    replaces an earlier one, errors name the snippet and its line, and
    outbox config says which file set each changed key."""
    from conftest import OUTBOX, OUTBOXD
    conf = os.path.join(workdir, "outbox.conf")
    d = os.path.join(workdir, "outbox.conf.d")
    os.makedirs(d)
    with open(conf, "w") as f:
        f.write("[queue]\nlifetime = 2d\nretry_max = 2h\n[relay]\nhost = a.example\n[aliases]\nroot = a@x.example\n")
    snippets = {"20-later.conf": "[queue]\nlifetime = 3d\n",
                "10-relay.conf": "[relay]\nhost = b.example\n[relay.backup]\nhost = c.example\n"
                                 "[aliases]\nroot = b@x.example\n",
                "30-not-read.conf~": "[queue]\nlifetime = 9d\n",
                ".hidden.conf": "[queue]\nlifetime = 8d\n",
                "40-not-read.conf.dpkg-dist": "[queue]\nlifetime = 7d\n"}
    for name, text in snippets.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    for p in [conf] + [os.path.join(d, n) for n in snippets]:
        os.chmod(p, 0o644)
    r = subprocess.run([OUTBOX, "-C", conf, "config", "-n"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "lifetime = 3d    # %s/20-later.conf\n" % d in out
    assert "retry_max = 2h    # %s\n" % conf in out
    assert "host = b.example    # %s/10-relay.conf\n" % d in out
    assert "[relay.backup]\nhost = c.example    # %s/10-relay.conf\n" % d in out
    assert "root = b@x.example    # %s/10-relay.conf\n" % d in out
    assert "9d" not in out and "8d" not in out and "7d" not in out
    assert subprocess.run([OUTBOXD, "-t", "-c", conf], capture_output=True).returncode == 0
    # an error in a snippet names the snippet and its line; twice in one file is still an error
    with open(os.path.join(d, "50-bad.conf"), "w") as f:
        f.write("[queue]\n\nlifetime = soon\nretry_min = 1m\nretry_min = 2m\n")
    r = check(conf)
    err = r.stderr.decode()
    assert r.returncode == 78
    assert "%s/50-bad.conf:3: [queue] lifetime: not a duration" % d in err, err
    assert "%s/50-bad.conf:5: [queue] retry_min: given twice" % d in err, err
    os.unlink(os.path.join(d, "50-bad.conf"))
    # a snippet others may write is refused as the file is: it may run password_command
    evil = os.path.join(d, "60-open.conf")
    with open(evil, "w") as f:
        f.write("[relay]\npassword_command = /tmp/x\n")
    os.chmod(evil, 0o666)
    r = check(conf)
    assert r.returncode == 78 and "60-open.conf: writable by its group or others" in r.stderr.decode()


def test_a_relay_from_a_snippet_is_the_one_outboxd_uses(relay_daemon):
    from test_delivery import send, wait_queue_empty
    d, up = relay_daemon(start=False)
    port = d.sections["relay"]["port"]
    d.sections["relay"]["port"] = "1"                  # the file says a closed port ...
    d.write_conf()
    snip = os.path.join(os.path.dirname(d.conf), "outbox.conf.d")
    os.makedirs(snip)
    with open(os.path.join(snip, "10-port.conf"), "w") as f:
        f.write("[relay]\nport = %s\n" % port)          # ... the snippet the upstream's
    os.chmod(os.path.join(snip, "10-port.conf"), 0o644)
    d.start()
    send(d, ["a@r.example"])
    assert [m.rcpt_tos for m in up.wait_for(1)] == [["a@r.example"]]
    wait_queue_empty(d)


def test_sighup_reads_the_configuration_off_the_loop(make_daemon):
    """The loop thread never touches the disk: a reload's files are read
    on the thread pool (outboxd.c reload_work) and only applied on the
    loop; strace names the thread of every open of the file."""
    from test_commit_steps import NO_LSAN, trace_opens
    d = make_daemon(start=False)
    d.prefix = NO_LSAN                # (LeakSanitizer cannot run under ptrace)
    d.start()
    opened = trace_opens(d, d.conf)
    d.sections["queue"]["max_recipients"] = "7"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    threads, lines = opened()
    assert d.proc.pid not in threads, lines     # the main thread runs the loop
    assert d.proc.poll() is None
    with d.smtp() as s:               # and the new value is in force
        s.ehlo("x")
        s.mail("a@s.example")
        for i in range(7):
            assert s.rcpt("r%d@r.example" % i)[0] == 250
        assert s.rcpt("r7@r.example")[0] == 452

    # two SIGHUPs at once, the file changed between them: the second file
    # is the one in force (a SIGHUP during a reload reads the file again)
    d.sections["queue"]["max_recipients"] = "3"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.sections["queue"]["max_recipients"] = "5"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while True:
        with d.smtp() as s:
            s.ehlo("x")
            s.mail("a@s.example")
            codes = [s.rcpt("r%d@r.example" % i)[0] for i in range(6)]
        if codes == [250] * 5 + [452] or time.time() > deadline:
            break
        time.sleep(0.1)
    assert codes == [250] * 5 + [452], codes
    time.sleep(0.5)                   # and it stays so: no reload of "3" after it
    with d.smtp() as s:
        s.ehlo("x")
        s.mail("a@s.example")
        assert [s.rcpt("r%d@r.example" % i)[0] for i in range(6)] == [250] * 5 + [452]


def test_a_stop_during_a_reload_exits_cleanly(make_daemon):
    """SIGTERM right behind SIGHUP: the reload read on the pool is dropped,
    not applied to a stopping daemon, and outboxd exits 0 (a sanitizer
    build would report the configuration if it leaked)."""
    for _ in range(5):
        d = make_daemon(name="d%d" % _)
        d.proc.send_signal(signal.SIGHUP)
        assert d.stop() == 0, d.log()
        assert "reload failed" not in d.log()
