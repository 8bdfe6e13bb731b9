"""The sendmail command: arguments, -t, -i, -f, headers it adds, exit codes."""

import os
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import OUTBOX


# A set-group-ID copy run as nobody (under SAN=1 the tool turns
# LeakSanitizer off in such a run: toolconf.c).
SETGID_AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def only_message(d):
    ids = d.queue_ids()
    assert len(ids) == 1, ids
    return d.parse_queue_file(ids[0])


def headers_of(msg):
    head = msg.split(b"\r\n\r\n", 1)[0]
    return head.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("argv0", [None, "sendmail"])
def test_recipients_as_arguments_lf_input(daemon, argv0):
    r = daemon.sendmail(["-f", "me@sender.example", "a@r.example", "b@r.example"],
                        b"Subject: cron output\n\nline 1\nline 2\n", argv0=argv0)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    env, msg = only_message(daemon)
    assert env["from"] == "me@sender.example"
    assert [a for _, a in env["rcpt"]] == ["a@r.example", "b@r.example"]
    assert msg.endswith(b"\r\n\r\nline 1\r\nline 2\r\n")
    assert b"\n" not in msg.replace(b"\r\n", b"")
    h = headers_of(msg)
    assert "Subject: cron output" in h
    assert re.search(r"^Date: \w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", h, re.M)
    assert re.search(r"^Message-ID: <[^@\s]+@client\.example>$", h, re.M)
    assert "From: " in h and "<me@sender.example>" in h
    assert h.startswith("Received: from localhost (uid %d" % os.getuid())
    assert r.stdout == b""


def test_existing_headers_kept_and_fullname(daemon):
    r = daemon.sendmail(["-F", "Cron Daemon", "-f", "root", "x@r.example"],
                        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <keep@me>\n\nbody\n")
    assert r.returncode == 0, r.stderr
    env, msg = only_message(daemon)
    h = headers_of(msg)
    assert h.count("Date:") == 1 and "Date: Mon, 1 Jan 2024" in h
    assert h.count("Message-ID:") == 1 and "<keep@me>" in h
    assert 'From: "Cron Daemon" <root@client.example>' in h
    assert env["from"] == "root@client.example"


def test_dash_t_takes_to_cc_bcc_and_removes_bcc(daemon):
    msg_in = (b"From: App <app@sender.example>\n"
              b"To: \"Doe, John\" <jd@r.example>, ann@r.example\n"
              b"Cc: team: c1@r.example, c2@r.example;\n"
              b"Bcc: secret@r.example\n"
              b"Subject: t\n\nhello\n")
    r = daemon.sendmail(["-t", "-i"], msg_in)
    assert r.returncode == 0, r.stderr
    env, msg = only_message(daemon)
    assert [a for _, a in env["rcpt"]] == ["jd@r.example", "ann@r.example", "c1@r.example",
                                           "c2@r.example", "secret@r.example"]
    assert b"Bcc" not in msg and b"secret@r.example" not in msg.split(b"\r\n\r\n", 1)[1]
    assert b"secret" not in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n", 3)[-1]


def test_lone_dot_ends_input_unless_dash_i(daemon):
    r = daemon.sendmail(["x@r.example"], b"Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0
    _, msg = only_message(daemon)
    assert msg.endswith(b"before\r\n") and b"after" not in msg
    for qid in daemon.queue_ids():
        daemon.remove_queued(qid)
    for flag in ("-i", "-oi"):
        r = daemon.sendmail([flag, "x@r.example"], b"Subject: dot\n\nbefore\n.\nafter\n..two\n")
        assert r.returncode == 0
        _, msg = only_message(daemon)
        assert msg.endswith(b"before\r\n.\r\nafter\r\n..two\r\n")
        for qid in daemon.queue_ids():
            daemon.remove_queued(qid)


def test_sender_forms_and_senders_map(make_daemon):
    d = make_daemon(extra={"senders": {"*": "server1@example.org"}})
    me = pwd.getpwuid(os.getuid()).pw_name
    for args, expect in ((["-fa@x.example"], "a@x.example"), (["-r", "b@x.example"], "b@x.example"),
                         (["-f", "<>"], ""), ([], "server1@example.org"), (["-f", me], "server1@example.org")):
        r = d.sendmail(args + ["--", "x@r.example"], b"Subject: s\n\nb\n")
        assert r.returncode == 0, (args, r.stderr)
        env, _ = only_message(d)
        assert env["from"] == expect, args
        d.remove_queued(d.queue_ids()[0])


def test_ignored_options_accepted(daemon):
    r = daemon.sendmail(["-oem", "-odi", "-oi", "-B", "8BITMIME", "-N", "never", "-R", "hdrs",
                         "-V", "envid", "-L", "label", "-O", "x=y", "-X", "/dev/null", "-U",
                         "-G", "-om", "-oo", "-oQ/tmp", "-bm", "-h", "17", "-n", "-m", "-odq",
                         "x@r.example"], b"Subject: o\n\nb\n")
    assert r.returncode == 0, r.stderr
    assert len(daemon.queue_ids()) == 1


def test_every_ignored_flag_is_in_the_manual():
    """The table of flags taken and ignored (tool/sendmail_args.c) and
    outbox(1) list the same flags."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "tool", "sendmail_args.c")) as f:
        flags = re.findall(r'^\t\{ "(-[^"]+)", (?:true|false), "', f.read(), re.M)
    assert len(flags) >= 20
    with open(os.path.join(root, "man", "outbox.1")) as f:
        items = " ".join(line for line in f if line.startswith(".It Fl "))
    for flag in flags:
        name = flag[1:]
        if name == "oX":
            assert ".It Fl o Ns Ar X" in items
        else:
            assert re.search(r"(?:Fl |, )%s\b" % re.escape(name), items), flag


@pytest.mark.parametrize("args,data,code,text", [
    (["-Z"], b"x\n", 64, b"unknown option"),
    (["-bd"], b"x\n", 64, b"unknown option"),
    (["-bv", "a@r.example"], b"x\n", 64, b"unknown option"),
    (["-oi", "-tx", "a@r.example"], b"x\n", 64, b"unknown option"),
    (["-f", "a@s.example", "-f", "b@s.example", "a@r.example"], b"x\n", 64, b"more than one sender"),
    (["-i", "-B"], b"x\n", 64, b"needs a value"),
    (["-f"], b"x\n", 64, b"needs a value"),
    ([], b"Subject: x\n\nb\n", 64, b"no recipients"),
    (["-t"], b"Subject: no rcpt\n\nb\n", 64, b"no recipients"),
    (["bad address@x"], b"x\n", 65, b"bad recipient"),
    (["-f", "bad sender@x", "a@r.example"], b"x\n", 65, b"bad sender"),
    (["-t"], b"To: <unterminated@r.example\n\nb\n", 65, b"To:"),
])
def test_usage_and_data_errors(daemon, args, data, code, text):
    r = daemon.sendmail(args, data)
    assert r.returncode == code, r.stderr
    assert text in r.stderr
    assert len(r.stderr.strip().split(b"\n")) <= 2
    assert daemon.queue_ids() == []


def test_daemon_down_the_message_waits_in_pickup(relay_daemon):
    """outboxd stopped: sendmail leaves the message in pickup/new/ (exit
    0), and outboxd sends it, once and as it was, when it starts."""
    d, up = relay_daemon()
    d.stop()
    r = d.sendmail(["-f", "me@sender.example", "-v", "later@r.example"],
                   b"Subject: later\n\n.leading dot\nbody\n")
    assert r.returncode == 0, r.stderr
    assert b"left in pickup/new/sendmail." in r.stderr
    (name,) = os.listdir(os.path.join(d.spool, "pickup", "new"))
    assert os.listdir(os.path.join(d.spool, "pickup", "tmp")) == []
    d.start()
    m = up.wait_for(1)[0]
    assert m.mail_from == "me@sender.example" and m.rcpt_tos == ["later@r.example"]
    assert b"\r\nSubject: later\r\n" in m.data
    assert m.data.endswith(b"\r\n\r\n.leading dot\r\nbody\r\n")
    assert re.search(rb"Received: from local \(uid %d\b" % os.getuid(), m.data)
    assert b"X-Sender" not in m.data and b"X-Receiver" not in m.data
    assert os.listdir(os.path.join(d.spool, "pickup", "new")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a user outside the daemon's group")
def test_daemon_down_and_pickup_not_writable_is_temporary(daemon):
    daemon.stop()
    r = daemon.sendmail(["x@r.example"], b"Subject: s\n\nb\n", user=65534)
    assert r.returncode == 75, r
    assert b"not reachable, and writing into" in r.stderr


def test_refusal_by_daemon_maps_to_exit_code(make_daemon):
    d = make_daemon(extra={"queue": {"max_message_size": "2K"}})
    r = d.sendmail(["x@r.example"], b"Subject: big\n\n" + b"y" * 5000 + b"\n")
    assert r.returncode == 65
    assert b"552" in r.stderr
    assert d.queue_ids() == []


def test_verbose_shows_dialogue_without_body(daemon):
    r = daemon.sendmail(["-v", "x@r.example"], b"Subject: v\n\nTOPSECRETBODY\n")
    assert r.returncode == 0
    assert b"RCPT TO:<x@r.example>" in r.stderr and b"queued as" in r.stderr
    assert b"TOPSECRETBODY" not in r.stderr


def test_comma_separated_recipients_in_one_argument(daemon):
    r = daemon.sendmail(["a@r.example, b@r.example"], b"Subject: s\n\nb\n")
    assert r.returncode == 0, r.stderr
    env, _ = only_message(daemon)
    assert [a for _, a in env["rcpt"]] == ["a@r.example", "b@r.example"]


def test_partly_refused_recipients_queue_nothing(make_daemon):
    """One RCPT refused in the pipelined group: the DATA that got 354 is
    abandoned, nothing is queued, and the first refusal is the reason."""
    d = make_daemon(extra={"queue": {"max_recipients": "1"}})
    r = d.sendmail(["a@r.example", "b@r.example"], b"Subject: s\n\nb\n")
    assert r.returncode == 75, r.stderr
    assert b"recipient refused: 452 4.5.3" in r.stderr
    import time
    time.sleep(0.3)
    assert d.queue_ids() == []
    assert os.listdir(os.path.join(d.spool, "tmp")) == []


@pytest.mark.parametrize("how,code,text", [
    (["mailq"], 69, "outboxd is not running"), (["outbox", "queue"], 69, "outboxd is not running"),
    (["outbox", "status"], 1, "outboxd is not running")])
def test_queue_tools_without_a_daemon(workdir, how, code, text):
    """mailq is installed as a link: without outboxd it says so, never
    a bare usage message."""
    import subprocess
    from conftest import OUTBOX
    link = os.path.join(workdir, how[0])
    if how[0] != "outbox":
        os.symlink(OUTBOX, link)
    exe = link if how[0] != "outbox" else OUTBOX
    conf = os.path.join(workdir, "none.conf")
    with open(conf, "w") as f:
        f.write("[listen]\ncontrol = %s/nothing.sock\n" % workdir)
    r = subprocess.run([exe] + how[1:], capture_output=True, text=True,
                       env=dict(os.environ, OUTBOX_CONF=conf))
    assert r.returncode == code, r
    assert text in r.stderr and "usage" not in r.stderr


def test_bs_is_an_smtp_session_on_stdin_and_stdout(relay_daemon):
    """sendmail -bs, driven by a script one command at a time: the
    daemon's own session answers, the message arrives upstream, and the
    Received: line names the user who ran the command."""
    d, up = relay_daemon()
    e = dict(os.environ, OUTBOX_CONF=d.conf)
    p = subprocess.Popen([OUTBOX, "sendmail", "-bs"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=e)

    def reply():
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, "the session ended early: %r" % lines
            lines.append(line)
            if line[3:4] != b"-":
                return lines

    assert reply()[0].startswith(b"220 ")
    for cmd, code in ((b"EHLO script.example", b"250"), (b"MAIL FROM:<me@sender.example>", b"250"),
                      (b"RCPT TO:<bs@r.example>", b"250"), (b"DATA", b"354")):
        p.stdin.write(cmd + b"\r\n")
        p.stdin.flush()
        assert reply()[-1].startswith(code), cmd
    p.stdin.write(b"Subject: bs\r\n\r\n..dot line\r\nbody\r\n.\r\n")
    p.stdin.flush()
    assert reply()[-1].startswith(b"250 2.0.0 Ok: queued as ")
    p.stdin.write(b"QUIT\r\n")
    p.stdin.close()
    assert reply()[-1].startswith(b"221")
    assert p.wait(10) == 0
    m = up.wait_for(1)[0]
    assert m.mail_from == "me@sender.example" and m.rcpt_tos == ["bs@r.example"]
    assert m.data.endswith(b"Subject: bs\r\n\r\n.dot line\r\nbody\r\n")
    assert re.search(rb"Received: from script\.example \(uid %d\b" % os.getuid(), m.data), m.data[:300]


def test_bs_without_the_daemon_says_421(make_daemon):
    d = make_daemon()
    d.stop()
    r = d.sendmail(["-bs"], b"EHLO x\r\n")
    assert r.returncode == 75 and r.stdout.startswith(b"421 4.3.0 outboxd is not reachable"), r


def test_t_with_resent_fields_goes_to_the_resent_recipients_only(daemon):
    """-t on a resent message: Resent-To/Cc/Bcc are the recipients (To
    and Cc name the first delivery's), Resent-Bcc is removed; argument
    recipients are added."""
    msg_in = (b"From: a@s.example\nTo: first@r.example\nCc: firstcc@r.example\n"
              b"Resent-From: b@s.example\nResent-To: again@r.example\n"
              b"Resent-Cc: againcc@r.example\nResent-Bcc: hidden@r.example\n"
              b"Subject: resent\n\nbody\n")
    r = daemon.sendmail(["-t", "-i", "arg@r.example"], msg_in)
    assert r.returncode == 0, r.stderr
    env, msg = only_message(daemon)
    assert sorted(a for _, a in env["rcpt"]) == \
        ["again@r.example", "againcc@r.example", "arg@r.example", "hidden@r.example"]
    head = headers_of(msg)
    assert "Resent-Bcc" not in head and "hidden@" not in head
    assert "To: first@r.example" in head and "Resent-To: again@r.example" in head


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a set-group-ID copy")
def test_setgid_command_uses_its_group_for_pickup_only(relay_daemon, workdir):
    """The installed command is set-group-ID for the daemon's group: a
    user outside it can leave mail in pickup/ while outboxd is down, but
    cannot name another configuration, and gets nothing else from it."""
    import grp
    d, up = relay_daemon()
    d.stop()
    tool = os.path.join(workdir, "sbin")
    os.makedirs(tool, exist_ok=True)
    os.chmod(workdir, 0o755)
    copy = os.path.join(tool, "sendmail")
    subprocess.run(["cp", OUTBOX, copy], check=True)
    os.chown(copy, 0, grp.getgrnam("outbox").gr_gid)
    os.chmod(copy, 0o2755)
    nobody = SETGID_AS_NOBODY
    # the default configuration is what a privileged run reads: point it here
    r = subprocess.run(nobody + [copy, "-C", d.conf, "x@r.example"], input=b"S: x\n\nb\n",
                       capture_output=True)
    assert r.returncode == 78 and b"-C is refused while set-group-ID" in r.stderr, r
    r = subprocess.run(nobody + [copy, "x@r.example"], input=b"S: x\n\nb\n", capture_output=True,
                       env={"OUTBOX_CONF": d.conf})
    assert r.returncode == 78 and b"OUTBOX_CONF is refused" in r.stderr, r
    # as root the same copy may name one: root is not "privileged" by it
    r = subprocess.run([copy, "-C", d.conf, "-f", "root@sender.example", "sg@r.example"],
                       input=b"Subject: sg\n\nfrom root\n", capture_output=True)
    assert r.returncode == 0, r.stderr
    assert len(os.listdir(os.path.join(d.spool, "pickup", "new"))) == 1
    d.start()
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["sg@r.example"]


@pytest.mark.xdist_group("runconf")   # /run/outbox-test/outbox.conf: build/tests/outbox-runconf's default
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a set-group-ID copy")
def test_user_outside_the_group_leaves_mail_through_the_setgid_command(relay_daemon, workdir):
    """A user who is not in outboxd's group runs the set-group-ID command
    with its default configuration while outboxd is down: the message
    waits in pickup/new/, owned by that user, and once outboxd runs it
    reaches the upstream as that user's, with the user's uid recorded."""
    import grp
    d, up = relay_daemon(extra={"address": {"domain": "client.example"}})
    d.stop()
    runconf = "/run/outbox-test/outbox.conf"   # the helper's default (Makefile RUNCONF)
    os.makedirs(os.path.dirname(runconf), exist_ok=True)
    shutil.copy(d.conf, runconf)
    os.chmod(runconf, 0o644)
    try:
        os.chmod(workdir, 0o755)
        copy = os.path.join(workdir, "sendmail")
        shutil.copy(os.path.join(os.path.dirname(OUTBOX), "tests", "outbox-runconf"), copy)
        os.chown(copy, 0, grp.getgrnam("outbox").gr_gid)
        os.chmod(copy, 0o2755)
        nobody = SETGID_AS_NOBODY
        r = subprocess.run(nobody + [copy, "-i", "far@r.example"], env={"PATH": "/usr/bin:/bin"},
                           input=b"Subject: from nobody\n\nwhile it was down\n", capture_output=True)
        assert r.returncode == 0, r
        new = os.path.join(d.spool, "pickup", "new")
        (name,) = os.listdir(new)
        st = os.lstat(os.path.join(new, name))
        assert (st.st_uid, st.st_gid) == (65534, grp.getgrnam("outbox").gr_gid)
        # without the bit the same user cannot write there: 75, nothing left
        os.chmod(copy, 0o755)
        r = subprocess.run(nobody + [copy, "-i", "far@r.example"], env={"PATH": "/usr/bin:/bin"},
                           input=b"Subject: x\n\nx\n", capture_output=True)
        assert r.returncode == 75, r
        assert os.listdir(new) == [name]
    finally:
        os.unlink(runconf)
    d.start()
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["far@r.example"]
    login = pwd.getpwuid(65534).pw_name
    assert m.mail_from == "%s@client.example" % login
    assert m.data.startswith(b"Received: from local (uid 65534 %s)\r\n" % login.encode()), m.data[:300]
    assert m.data.endswith(b"\r\n\r\nwhile it was down\r\n")
    assert os.listdir(new) == []


@pytest.mark.parametrize("args", [["-F", "Evil\nBcc: victim@r.example"], ["-F", "tab\there"],
                                  ["-f", "a@s.example\nRCPT TO:<victim@r.example>"],
                                  ["-f", "a\r@s.example"]])
def test_control_characters_in_f_or_F_are_refused(daemon, args):
    r = daemon.sendmail(args + ["x@r.example"], b"Subject: s\n\nb\n")
    assert r.returncode == 65, r
    assert daemon.queue_ids() == []


def test_cron_exact_arguments_with_aliases(relay_daemon):
    """cron (Debian's) runs: sendmail -FCronDaemon -i -B8BITMIME -oem
    root, with the job's output and its own headers on stdin."""
    d, up = relay_daemon(extra={"aliases": {"root": "admin@r.example"},
                                "senders": {"root": "cron@sender.example"}})
    out = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\n"
           b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
           b"Content-Transfer-Encoding: 8bit\n\n.one dot\nr\xc3\xa9sultat\n.\nafter\n")
    r = d.sendmail(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], out)
    assert r.returncode == 0, r.stderr
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["admin@r.example"]
    assert m.mail_from == "cron@sender.example"
    assert b"\r\nFrom: cron@sender.example (Cron Daemon)\r\n" in m.data
    assert m.data.endswith(b"\r\n\r\n.one dot\r\nr\xc3\xa9sultat\r\n.\r\nafter\r\n")   # -i: the dot stays


@pytest.mark.parametrize("args", [
    ["-oem", "-oi", "--", "mutt@r.example"],                       # mutt
    ["-i", "git1@r.example", "git2@r.example"],                     # git send-email
    ["-t", "-i"],                                                   # PHP mail()
    ["-odi", "-f", "", "bounce@r.example"],                         # -odi, null sender
    ["-f", "<>", "bounce@r.example"],
], ids=["mutt", "git-send-email", "php", "odi-null-sender", "angle-null-sender"])
def test_what_real_programs_send(relay_daemon, args):
    d, up = relay_daemon()
    msg = b"From: app@sender.example\nTo: php@r.example\nSubject: real\n\nbody\n"
    r = d.sendmail(args, msg)
    assert r.returncode == 0, r.stderr
    m = up.wait_for(1)[0]
    expect = {"mutt": ["mutt@r.example"], "git-send-email": ["git1@r.example", "git2@r.example"],
              "php": ["php@r.example"]}
    name = [k for k in expect if args[-1].startswith(k[:3])]
    if "-t" in args:
        assert m.rcpt_tos == ["php@r.example"]
    elif args[-1] == "bounce@r.example":
        assert m.mail_from in ("", "<>") and m.rcpt_tos == ["bounce@r.example"]
    else:
        assert sorted(m.rcpt_tos) == expect[name[0]]
    assert m.data.endswith(b"Subject: real\r\n\r\nbody\r\n") or b"\r\n\r\nbody\r\n" in m.data


def sendmail_link(d):
    """This sendmail where a mail program looks for one: a link named
    sendmail to the outbox binary."""
    link = os.path.join(d.base, "sendmail")
    if not os.path.exists(link):
        os.symlink(OUTBOX, link)
    return link


def test_s_nail_sends_through_this_sendmail(relay_daemon, workdir):
    """s-nail (mailx) runs its mta as `sendmail -i -F Name -f addr --
    rcpt...` with the message it composed on stdin."""
    d, up = relay_daemon()
    env = dict(os.environ, OUTBOX_CONF=d.conf, MAILRC="/dev/null", HOME=workdir)
    r = subprocess.run(["s-nail", "-n", "-S", "mta=" + sendmail_link(d), "-S", "sendwait",
                        "-s", "Disk report", "-r", "Ops Team <ops@sender.example>",
                        "-c", "cc@r.example", "-b", "hidden@r.example", "admin@r.example"],
                       input=b"/ is 91% full\n.\nafter a lone dot\n", env=env, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r
    m = up.wait_for(1)[0]
    assert m.mail_from == "ops@sender.example"
    assert sorted(m.rcpt_tos) == ["admin@r.example", "cc@r.example", "hidden@r.example"]
    head, body = m.data.split(b"\r\n\r\n", 1)
    assert b"\r\nSubject: Disk report\r\n" in head
    assert b"\r\nFrom: Ops Team <ops@sender.example>\r\n" in head
    assert b"\r\nTo: admin@r.example\r\n" in head and b"\r\nCc: cc@r.example\r\n" in head
    assert b"hidden@" not in head        # s-nail's Bcc went into the envelope only
    assert body == b"/ is 91% full\r\n.\r\nafter a lone dot\r\n"   # -i: the dot is text


def test_git_send_email_with_this_sendmail_as_smtp_server(relay_daemon, workdir):
    """git send-email --smtp-server=/path/to/sendmail runs it as
    `sendmail -i rcpt...` (To, Cc and the author's Cc) for each patch."""
    d, up = relay_daemon()
    repo = os.path.join(workdir, "repo")
    ident = ["-c", "user.name=Dev Eloper", "-c", "user.email=dev@sender.example"]
    env = dict(os.environ, HOME=workdir, OUTBOX_CONF=d.conf, GIT_CONFIG_NOSYSTEM="1")
    run = lambda *a: subprocess.run(["git"] + ident + list(a), cwd=repo, env=env, check=True,
                                    capture_output=True, timeout=60)
    os.makedirs(repo)
    run("init", "-q")
    for i in range(2):
        with open(os.path.join(repo, "f%d" % i), "w") as f:
            f.write(".leading dot\nline %d\n" % i)
        run("add", "f%d" % i)
        run("commit", "-q", "-m", "change %d" % i)
    run("format-patch", "-q", "-2", "-o", os.path.join(workdir, "patches"))
    patches = sorted(os.path.join(workdir, "patches", p) for p in os.listdir(os.path.join(workdir, "patches")))
    r = run("send-email", "--confirm=never", "--smtp-server=" + sendmail_link(d),
            "--to=list@r.example", "--cc=reviewer@r.example", *patches)
    assert b"Result: OK" in r.stdout + r.stderr
    msgs = up.wait_for(2)
    subjects = sorted(re.search(rb"\r\nSubject: ([^\r]*)", m.data).group(1) for m in msgs)
    assert subjects == [b"[PATCH 1/2] change 0", b"[PATCH 2/2] change 1"]
    for m in msgs:
        assert sorted(m.rcpt_tos) == ["dev@sender.example", "list@r.example", "reviewer@r.example"]
        # no --envelope-sender: the invoking user, qualified
        assert m.mail_from == "%s@client.example" % pwd.getpwuid(os.getuid()).pw_name
        assert b"\r\n+.leading dot\r\n" in m.data   # dot handling: -i keeps it as it is


def test_t_reads_address_lists_as_mail_programs_write_them(relay_daemon):
    """-t with RFC 2047 display names, a quoted name with a comma, a group,
    comments, a quoted local part and a folded field: the upstream gets
    each address once, the header section as it was but for Bcc."""
    d, up = relay_daemon()
    to = (b"To: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <jm@r.example>,\n"
          b" \"Doe, John\" (the first) <jd@r.example>\n")
    cc = b"Cc: =?utf-8?q?Die_Gruppe?=: \"odd,local\"@r.example, (c) a@r.example;\n"
    msg = (b"From: App <app@sender.example>\n" + to + cc
           + b"Bcc: =?utf-8?B?R2VoZWlt?= <hidden@r.example>\nSubject: lists\n\nbody\n")
    r = d.sendmail(["-t", "-i"], msg)
    assert r.returncode == 0, r.stderr
    m = up.wait_for(1)[0]
    assert m.rcpt_tos == ["jm@r.example", "jd@r.example", "\"odd,local\"@r.example",
                          "a@r.example", "hidden@r.example"]
    head = m.data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert to.replace(b"\n", b"\r\n") in head and cc.replace(b"\n", b"\r\n") in head
    assert b"Bcc" not in head and b"hidden" not in head


@pytest.mark.parametrize("field", [
    b"To: =?utf-8?q?only_a_name?=\n",            # an encoded word is no address
    b"To: Name <>\n",
    b"To: a@r.example>\n",
    b"To: <a<b@r.example>>\n",
])
def test_t_refuses_malformed_address_lists(daemon, field):
    r = daemon.sendmail(["-t"], field + b"Subject: bad\n\nb\n")
    assert r.returncode == 65, r
    assert b"To:" in r.stderr
    assert daemon.queue_ids() == []


@pytest.mark.parametrize("greeting", [b"", b"421 4.3.2 too busy, try later\r\n",
                                      b"554 5.3.2 not taking mail\r\n"])
def test_a_daemon_that_refuses_or_hangs_up_is_reported_not_a_crash(make_daemon, greeting):
    """Something at the socket that greets with a refusal, or hangs up at
    once: sendmail writes its first group before the greeting, so it may
    write into a closed connection; it reports and exits 75 or 69 (never
    dies of SIGPIPE), and leaves nothing behind."""
    import socket
    import threading
    d = make_daemon(start=False)
    path = d.socket
    os.makedirs(os.path.dirname(path), exist_ok=True)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)

    def serve():
        c, _ = srv.accept()
        if greeting:
            c.sendall(greeting)
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    r = d.sendmail(["-i", "a@r.example"], b"Subject: x\n\n" + b"y" * 300000 + b"\n")
    t.join()
    srv.close()
    assert r.returncode == (69 if greeting.startswith(b"5") else 75), r
    if greeting:
        assert greeting.strip() in r.stderr
    else:
        assert b"closed the connection" in r.stderr
    new = os.path.join(d.spool, "pickup", "new")
    assert not os.path.isdir(new) or os.listdir(new) == []   # not taken for "daemon down"
