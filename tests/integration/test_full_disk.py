"""A full disk costs nothing already accepted (SPEC "Delivery"): the spool
is a small tmpfs; below [queue] min_free, and when a write fails with
ENOSPC, new mail gets 452 4.3.1 (sendmail: exit 75), no partial file is
left, queued mail keeps flowing and its status updates still work; once
there is room again, mail is accepted without a restart, and everything
accepted before is delivered exactly once."""

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import IS_ROOT


@pytest.fixture
def small_spool(workdir):
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mnt = os.path.join(workdir, "disk")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", mnt])


def fill(path, leave_kb):
    """Write a file until about leave_kb KB are free."""
    st = os.statvfs(os.path.dirname(path))
    free = st.f_bavail * st.f_frsize - leave_kb * 1024
    with open(path, "wb") as f:
        while free > 0:
            n = min(free, 65536)
            try:
                f.write(b"\0" * n)
                f.flush()
            except OSError:
                break
            free -= n


def body(i, size=20000):
    return b"Subject: m%d\n\n" % i + (b"line of mail %d\n" % i) * (size // 16)


def test_full_disk_refuses_new_mail_and_loses_nothing(relay_daemon, small_spool):
    d, up = relay_daemon(start=False, relay={"workers": "1"})
    d.spool = os.path.join(small_spool, "spool")
    d.sections["queue"].update(spool=d.spool, min_free="1M")
    d.write_conf()
    d.start()
    up.tempfail_rcpt = True             # everything stays queued for now
    accepted, refused = [], None
    for i in range(200):                # ~20 KB each until below min_free
        r = d.sendmail(["-f", "me@s.example", "r%d@r.example" % i], body(i))
        if r.returncode != 0:
            refused = r
            break
        accepted.append(i)
    assert refused is not None and refused.returncode == 75, refused
    assert b"452 4.3.1" in refused.stderr
    assert len(accepted) > 10 and len(d.queue_ids()) == len(accepted)
    d.wait_log(r"free space \(\d+ KB\) is below \[queue\] min_free \(1024 KB\): new mail is refused \(452\)")

    # min_free 0 and a truly full disk: the write itself fails (ENOSPC)
    d.sections["queue"]["min_free"] = "0"
    d.write_conf()
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log(r"configuration reloaded", timeout=5)
    fill(os.path.join(small_spool, "filler"), 0)
    r = d.sendmail(["-f", "me@s.example", "late@r.example"], body(999, 200000))
    assert r.returncode == 75 and b"452 4.3.1" in r.stderr, r
    tmp = os.path.join(d.spool, "tmp")
    assert [f for f in os.listdir(tmp) if not f.startswith("spare.")] == []   # no partial file
    assert len(d.queue_ids()) == len(accepted)

    # queued mail still flows on a full disk: status updates and removals
    up.tempfail_rcpt = False
    msgs = up.wait_for(len(accepted), timeout=60)
    d.wait_log(r"removed", count=len(accepted), timeout=30)
    assert sorted(int(re.search(rb"Subject: m(\d+)", m.data).group(1)) for m in msgs) == accepted
    for m in msgs:
        i = int(re.search(rb"Subject: m(\d+)", m.data).group(1))
        assert m.rcpt_tos == ["r%d@r.example" % i]
        assert m.data.endswith(b"line of mail %d\r\n" % i)

    # room again: accepted without a restart
    os.unlink(os.path.join(small_spool, "filler"))
    r = d.sendmail(["-f", "me@s.example", "after@r.example"], body(1000))
    assert r.returncode == 0, r.stderr
    up.wait_for(len(accepted) + 1)
    d.wait_log(r"has room again: new mail is accepted")
    time.sleep(1.0)
    assert len(up.messages) == len(accepted) + 1      # exactly once each
    assert "bounced" not in d.log()
