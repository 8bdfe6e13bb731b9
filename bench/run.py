#!/usr/bin/python3
"""make bench: outbox's three workloads, each next to a floor measured in
the same run.  See README "Benchmark".

  W1  300 x `sendmail -i rcpt` (2 KB), one process at a time: p50/p99 of the
      sendmail process's wall time, against the floor program run as a
      process (write 2 KB, fsync, rename, fsync the directory).
  W2  2000 messages from 4 parallel submitters until the sink has them all,
      against 4 parallel floor processes doing 500 each.  Reported twice:
      submitters as 4 processes each holding an SMTP session on the Unix
      socket (bench/submit.c), and as 4 loops of sendmail processes.
  W3  as W2 (SMTP sessions), with the sink answering every batch of replies
      20 ms late; upstream connections counted.  Run twice: the sink offering
      CHUNKING (as Postfix and Gmail do; outboxd then sends BDAT batches), and
      offering only DATA (one round trip per message at best: 8 connections
      x 50 = 400 msgs/s is that case's ceiling).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
OUTBOXD = os.path.join(BUILD, "outboxd")
OUTBOX = os.path.join(BUILD, "outbox")
FLOOR = os.path.join(BUILD, "bench", "floor")
SINK = os.path.join(BUILD, "bench", "sink")
SUBMIT = os.path.join(BUILD, "bench", "submit")
MESSAGE = (b"From: bench@example.org\nTo: sink@example.net\nSubject: benchmark\n\n"
           + (b"0123456789abcdef" * 4 + b"\n") * 29)  # about 2 KB
assert 1900 < len(MESSAGE) < 2100


STARTED = []  # every process started, ended in main()'s finally


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Sink:
    def __init__(self, work, delay_ms, data_only=False):
        self.port = free_port()
        self.stats = os.path.join(work, "sink-%d%s.stats" % (delay_ms, "-data" if data_only else ""))
        self.proc = subprocess.Popen([SINK, str(self.port), str(delay_ms), self.stats]
                                     + (["data-only"] if data_only else []))
        STARTED.append(self.proc)
        while not os.path.exists(self.stats):
            time.sleep(0.01)

    def read(self):
        with open(self.stats) as f:
            return {k: int(v) for k, v in (line.split() for line in f)}

    def wait_messages(self, n, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.read()["messages"] >= n:
                return time.time()
            time.sleep(0.002)
        raise SystemExit("sink got %d of %d messages" % (self.read()["messages"], n))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Outboxd:
    def __init__(self, work, sink, workers=8):
        self.work = work
        self.spool = os.path.join(work, "spool")
        self.socket = os.path.join(work, "sock", "outbox.sock")  # outboxd makes sock/ itself
        self.conf = os.path.join(work, "bench-%d.conf" % sink.port)
        with open(self.conf, "w") as f:
            f.write("[queue]\nspool = %s\n[listen]\nsocket = %s\ncontrol = %s/sock/control.sock\n"
                    "[relay]\nhost = 127.0.0.1\nport = %d\ntls = none\nworkers = %d\n"
                    "[address]\ndomain = bench.example\n[log]\ntarget = stderr\nlevel = info\n"
                    % (self.spool, self.socket, work, sink.port, workers))
        os.chmod(self.conf, 0o644)
        with open(os.path.join(work, "msg.crlf"), "wb") as f:  # for bench/submit
            f.write(MESSAGE.replace(b"\n", b"\r\n"))
        self.log = open(os.path.join(work, "outboxd.log"), "ab")
        self.proc = subprocess.Popen([OUTBOXD, "-c", self.conf], stdout=self.log, stderr=self.log)
        STARTED.append(self.proc)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                s.close()
                return
            except OSError:
                time.sleep(0.01)
        raise SystemExit("outboxd did not start")

    def peak_rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return -1

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def run_timed(cmd, stdin_path=None):
    with open(stdin_path or os.devnull, "rb") as stdin:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=stdin, check=True)
        return time.perf_counter() - t0


def floor_dir(work):
    """A new, empty directory for each floor measurement.  The old ones
    stay until the end: deleting thousands of files just before would
    slow the floor's own creates (ext4 skips recently freed inodes), and
    the floor must be the least a durable submission costs."""
    n = len([e for e in os.listdir(work) if e.startswith("floor.")])
    d = os.path.join(work, "floor.%d" % n)
    os.makedirs(d)
    os.sync()   # write back inode tables: only frees of the last 5 s are skipped then
    return d


def w1(work, d, sink):
    """Floor and sendmail runs alternate, so both see the same disk."""
    n = 300
    fd = floor_dir(work)
    msg = os.path.join(work, "msg.eml")
    with open(msg, "wb") as f:
        f.write(MESSAGE)
    env = dict(os.environ, OUTBOX_CONF=d.conf)
    before = sink.read()["messages"]
    times, floor = [], []
    for _ in range(n):
        floor.append(run_timed([FLOOR, fd]))
        with open(msg, "rb") as stdin:
            t0 = time.perf_counter()
            subprocess.run([OUTBOX, "sendmail", "-i", "sink@example.net"], stdin=stdin, env=env, check=True)
            times.append(time.perf_counter() - t0)
    sink.wait_messages(before + n)
    f50, f99, s50, s99 = (pct(floor, 50), pct(floor, 99), pct(times, 50), pct(times, 99))
    print("W1 sendmail x%d, one at a time:  p50 %.2f ms  p99 %.2f ms   floor p50 %.2f ms  p99 %.2f ms"
          "   ratio p50 %.2f x (target <= 1.5 x)" % (n, s50 * 1e3, s99 * 1e3, f50 * 1e3, f99 * 1e3, s50 / f50))
    return s50 / f50


def floor_rate(work, procs=4, each=500):
    fd = floor_dir(work)
    t0 = time.perf_counter()
    ps = [subprocess.Popen([FLOOR, fd, str(each)]) for _ in range(procs)]
    for p in ps:
        p.wait()
    return procs * each / (time.perf_counter() - t0)


def submit_smtp(d, count, errors):
    """One submitter process (bench/submit.c): an SMTP session on the
    socket, each message waiting for its 250."""
    r = subprocess.run([SUBMIT, d.socket, str(count), os.path.join(d.work, "msg.crlf")])
    if r.returncode:
        errors.append(r.returncode)


def submit_sendmail(d, count, errors):
    env = dict(os.environ, OUTBOX_CONF=d.conf)
    for _ in range(count):
        r = subprocess.run([OUTBOX, "sendmail", "-i", "sink@example.net"], input=MESSAGE, env=env)
        if r.returncode:
            errors.append(r.returncode)


def parallel(d, sink, target, total=2000, submitters=4):
    before = sink.read()["messages"]
    errors = []
    t0 = time.time()
    ts = [threading.Thread(target=target, args=(d, total // submitters, errors)) for _ in range(submitters)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    submitted = time.time()
    if errors:
        raise SystemExit("submission errors: %r" % errors[:3])
    done = sink.wait_messages(before + total)
    return total / (done - t0), total / (submitted - t0)


def main():
    for b in (OUTBOXD, OUTBOX, FLOOR, SINK, SUBMIT):
        if not os.access(b, os.X_OK):
            raise SystemExit("missing %s: run make bench" % b)
    base = "/var/tmp"
    work = tempfile.mkdtemp(prefix="outbox-bench-", dir=base)
    os.chmod(work, 0o755)
    print("outbox benchmark: 2 KB messages, spool and floor in %s (%s), %d cores"
          % (work, subprocess.run(["df", "--output=fstype", work], capture_output=True,
                                  text=True).stdout.split()[-1], os.cpu_count()))
    only = os.environ.get("BENCH_ONLY", "W1 W2 W3").split()   # e.g. BENCH_ONLY=W2
    try:
        rss = 0
        if "W1" in only or "W2" in only:
            sink = Sink(work, 0)
            d = Outboxd(work, sink, workers=int(os.environ.get("BENCH_WORKERS", "4")))
            if "W1" in only:
                w1(work, d, sink)
            if "W2" in only:
                w2(work, d, sink)
            rss = d.peak_rss_kb()
            conns = sink.read()
            d.stop()
            sink.stop()
        if "W3" in only:
            rss = max(rss, w3(work))
        print("outboxd peak RSS %.1f MB" % (rss / 1024.0)
              + ("; W1/W2 upstream connections: %d at most at once, %d in all"
                 % (conns["connections_max"], conns["connections_total"]) if "W1" in only or "W2" in only else ""))
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def w2(work, d, sink):
    """The floor is measured before and after each workload and averaged."""
    f1 = floor_rate(work)
    rate, sub = parallel(d, sink, submit_smtp)
    f2 = floor_rate(work)
    fr = (f1 + f2) / 2
    print("W2 2000 msgs, 4 SMTP sessions:    %.0f msgs/s delivered (accepted at %.0f/s)   floor %.0f msgs/s"
          "   ratio %.2f x (target >= 0.8 x)" % (rate, sub, fr, rate / fr))
    rate2, sub2 = parallel(d, sink, submit_sendmail)
    fr = (fr + floor_rate(work)) / 2
    print("W2 2000 msgs, 4 sendmail loops:   %.0f msgs/s delivered (accepted at %.0f/s)   floor %.0f msgs/s"
          "   ratio %.2f x" % (rate2, sub2, fr, rate2 / fr))


def w3(work):
    rss = 0
    for data_only in (False, True):
        slow = Sink(work, 20, data_only)
        d = Outboxd(work, slow)
        rate3, _ = parallel(d, slow, submit_smtp)
        st = slow.read()
        if data_only:
            print("W3 same, sink offering only DATA: %.0f msgs/s delivered (ceiling 400: one round trip per "
                  "message)   upstream connections: %d at most at once, %d in all"
                  % (rate3, st["connections_max"], st["connections_total"]))
        else:
            print("W3 2000 msgs, sink 20 ms late:    %.0f msgs/s delivered (target >= 400), %d of %d by BDAT   "
                  "upstream connections: %d at most at once, %d in all (limit 8)"
                  % (rate3, st["bdat_messages"], st["messages"], st["connections_max"],
                     st["connections_total"]))
        rss = max(rss, d.peak_rss_kb())
        d.stop()
        slow.stop()
    return rss


if __name__ == "__main__":
    main()
