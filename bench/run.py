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
      20 ms late and offering only DATA (one round trip per message at best:
      8 connections x 50 = 400 msgs/s is that case's ceiling); upstream
      connections counted.
  W3C the same with the sink offering CHUNKING too (as Postfix and Gmail
      do; outboxd then sends BDAT batches): at least 0.95 x W2's rate.
  W4  100 000 messages (2 KB) already queued when outboxd starts, the W3C
      sink: the time until the socket answers (220), until the index is
      complete, and the drain rate, at least 0.9 x W3C's (the same sink).
  P   the pickup directory: 100 files renamed into pickup/new/ one at a
      time, the time until each is queued (its file removed): p50 under
      20 ms; and 2000 files dropped at once, the time until all are queued
      (under 5 s).
  M   a million queued messages (1 KB, all deferred: nothing is sent): the
      index built on a cold cache (caches dropped, as root) and a warm one,
      against the floor `find SPOOL -type f | wc -l` cold and warm (at most
      2 x the cold walk, under 10 s warm); the time to the first 220, and
      the RSS with the index complete (at most 128 MB).  Also the idle RSS
      with an empty queue (under 4 MB).
"""

import os
import re
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
SPAWN = os.path.join(BUILD, "bench", "spawn")
MKQUEUE = os.path.join(BUILD, "tests", "mkqueue")
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
    def __init__(self, work, sink, workers=8, spool=None, wait=True):
        self.work = work
        self.spool = spool or os.path.join(work, "spool")
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
        with open(os.path.join(work, "msg.eml"), "wb") as f:  # for sendmail
            f.write(MESSAGE)
        self.log_path = os.path.join(work, "outboxd.log")
        self.log = open(self.log_path, "ab")
        self.log_start = self.log.tell()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([OUTBOXD, "-c", self.conf], stdout=self.log, stderr=self.log)
        STARTED.append(self.proc)
        self.first_220 = self.wait_220()
        if wait:
            self.wait_indexed()

    def wait_220(self, timeout=30):
        """Seconds from the start until the socket answers with 220."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                banner = s.recv(100)
                s.close()
                if banner.startswith(b"220"):
                    return time.perf_counter() - self.t0
            except OSError:
                time.sleep(0.001)
        raise SystemExit("outboxd did not start")

    def wait_indexed(self, timeout=600):
        """The index time outboxd logged (seconds, from the walk's start)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                m = re.search(rb"queue indexed: (\d+) messages found in ([\d.]+) s", f.read())
            if m:
                return int(m.group(1)), float(m.group(2)), time.perf_counter() - self.t0
            time.sleep(0.01)
        raise SystemExit("outboxd did not finish indexing")

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

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


def run_timed(cmd, stdin_path=None, env=None):
    """The wall time of one run of cmd, started by bench/spawn."""
    out = subprocess.run([SPAWN, stdin_path or os.devnull, "1"] + cmd, env=env, check=True,
                         stdout=subprocess.PIPE).stdout
    return float(out)


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
        times.append(run_timed([OUTBOX, "sendmail", "-i", "sink@example.net"], msg, env))
    sink.wait_messages(before + n)
    f50, f99, s50, s99 = (pct(floor, 50), pct(floor, 99), pct(times, 50), pct(times, 99))
    print("W1 sendmail x%d, one at a time:  p50 %.2f ms  p99 %.2f ms   floor p50 %.2f ms  p99 %.2f ms"
          "   ratio p50 %.2f x (target <= 1.3 x)" % (n, s50 * 1e3, s99 * 1e3, f50 * 1e3, f99 * 1e3, s50 / f50))
    return s50 / f50


def floor_rate(work, procs=4, each=500, per_process=False):
    """procs floor processes doing each durable writes; or, per_process,
    procs loops of a floor process per write (as sendmail is run)."""
    fd = floor_dir(work)
    t0 = time.perf_counter()
    cmd = lambda: ([SPAWN, os.devnull, str(each), FLOOR, fd] if per_process else [FLOOR, fd, str(each)])
    ps = [subprocess.Popen(cmd(), stdout=subprocess.DEVNULL) for _ in range(procs)]
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
    """A loop of count sendmail processes, one after another."""
    env = dict(os.environ, OUTBOX_CONF=d.conf)
    r = subprocess.run([SPAWN, os.path.join(d.work, "msg.eml"), str(count), OUTBOX, "sendmail", "-i",
                        "sink@example.net"], env=env, stdout=subprocess.DEVNULL)
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
    for b in (OUTBOXD, OUTBOX, FLOOR, SINK, SUBMIT, SPAWN):
        if not os.access(b, os.X_OK):
            raise SystemExit("missing %s: run make bench" % b)
    base = "/var/tmp"
    work = tempfile.mkdtemp(prefix="outbox-bench-", dir=base)
    os.chmod(work, 0o755)
    print("outbox benchmark: 2 KB messages, spool and floor in %s (%s), %d cores"
          % (work, subprocess.run(["df", "--output=fstype", work], capture_output=True,
                                  text=True).stdout.split()[-1], os.cpu_count()))
    only = os.environ.get("BENCH_ONLY", "W1 W2 W3 W3C W4 P M").split()   # e.g. BENCH_ONLY=W2
    try:
        rss, rates = 0, {}
        if "W1" in only or "W2" in only:
            sink = Sink(work, 0)
            d = Outboxd(work, sink, workers=int(os.environ.get("BENCH_WORKERS", "4")))
            if "W1" in only:
                w1(work, d, sink)
            if "W2" in only:
                rates["W2"] = w2(work, d, sink)
            rss = d.peak_rss_kb()
            conns = sink.read()
            d.stop()
            sink.stop()
        for data_only, name in ((True, "W3"), (False, "W3C")):
            if name in only:
                rss3, rates[name] = w3(work, data_only)
                rss = max(rss, rss3)
        if "W3C" in rates and "W2" in rates:
            print("W3C / W2: %.2f x (target >= 0.95 x)" % (rates["W3C"] / rates["W2"]))
        if "W4" in only:
            w4(work, rates.get("W3C"))
        if "P" in only:
            pickup(work)
        if "M" in only:
            million(work)
        if rss:
            print("outboxd peak RSS %.1f MB" % (rss / 1024.0)
                  + ("; W1/W2 upstream connections: %d at most at once, %d in all"
                     % (conns["connections_max"], conns["connections_total"])
                     if "W1" in only or "W2" in only else ""))
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
    fp1 = floor_rate(work, per_process=True)
    rate2, sub2 = parallel(d, sink, submit_sendmail)
    fr = (fr + floor_rate(work)) / 2
    fp = (fp1 + floor_rate(work, per_process=True)) / 2
    print("W2 2000 msgs, 4 sendmail loops:   %.0f msgs/s delivered (accepted at %.0f/s)   floor %.0f msgs/s"
          "   ratio %.2f x (target >= 0.8 x)" % (rate2, sub2, fr, rate2 / fr))
    print("    against 4 loops of a floor process per message: %.0f msgs/s   ratio %.2f x"
          % (fp, rate2 / fp))
    return rate


def w3(work, data_only):
    slow = Sink(work, 20, data_only)
    d = Outboxd(work, slow)
    rate3, _ = parallel(d, slow, submit_smtp)
    st = slow.read()
    if data_only:
        print("W3 2000 msgs, sink 20 ms late, DATA only: %.0f msgs/s delivered (ceiling 400: one round "
              "trip per message)   upstream connections: %d at most at once, %d in all"
              % (rate3, st["connections_max"], st["connections_total"]))
    else:
        print("W3C the same, sink offering CHUNKING: %.0f msgs/s delivered, %d of %d by BDAT   "
              "upstream connections: %d at most at once, %d in all (limit 8)"
              % (rate3, st["bdat_messages"], st["messages"], st["connections_max"],
                 st["connections_total"]))
    rss = d.peak_rss_kb()
    d.stop()
    slow.stop()
    return rss, rate3


def drop_caches():
    """True when the page cache could be dropped (root)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def mkqueue(spool, n, size, *flags):
    subprocess.run([MKQUEUE] + list(flags) + [spool, str(n), str(size)], check=True)
    if os.geteuid() == 0:   # outboxd drops to the outbox user
        subprocess.run(["chown", "-R", "outbox:outbox", spool], check=True)


def w4(work, w3c):
    n = 100000
    spool = os.path.join(work, "spool-w4")
    mkqueue(spool, n, len(MESSAGE))
    slow = Sink(work, 20)
    drop_caches()
    d = Outboxd(work, slow, spool=spool, wait=False)
    found, index_s, _ = d.wait_indexed()
    done = slow.wait_messages(n, timeout=900)
    rate = n / (done - (d.t0 - time.perf_counter() + time.time()))
    print("W4 %d queued at start, W3C sink:  first 220 after %.3f s, index complete (%d) after %.2f s,"
          " drained at %.0f msgs/s%s" % (n, d.first_220, found, index_s, rate,
                                           "   W4 / W3C %.2f x (target >= 0.9 x)" % (rate / w3c)
                                           if w3c else ""))
    d.stop()
    slow.stop()
    shutil.rmtree(spool, ignore_errors=True)


def drop(spool, name, data):
    tmp = os.path.join(spool, "pickup", "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    new = os.path.join(spool, "pickup", "new", name)
    os.rename(tmp, new)
    return new


def wait_gone(path, timeout=60):
    deadline = time.time() + timeout
    while os.path.exists(path):
        if time.time() > deadline:
            raise SystemExit("pickup: %s was not taken" % path)
        time.sleep(0.0002)


def pickup(work):
    sink = Sink(work, 0)
    d = Outboxd(work, sink, spool=os.path.join(work, "spool-pickup"))
    data = b"To: sink@example.net\n" + MESSAGE
    lat = []
    for i in range(100):
        t0 = time.perf_counter()
        wait_gone(drop(d.spool, "one%d" % i, data))
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    paths = [drop(d.spool, "many%d" % i, data) for i in range(2000)]
    for p in paths:
        wait_gone(p)
    many = time.perf_counter() - t0
    sink.wait_messages(2100)
    print("P   pickup: rename into new/ -> queued p50 %.1f ms p99 %.1f ms (target p50 < 20 ms);"
          " 2000 dropped at once all queued in %.2f s (target < 5 s)"
          % (pct(lat, 50) * 1e3, pct(lat, 99) * 1e3, many))
    d.stop()
    sink.stop()


def walk_floor(spool):
    t0 = time.perf_counter()
    subprocess.run("find %s -type f | wc -l >/dev/null" % spool, shell=True, check=True)
    return time.perf_counter() - t0


def million(work):
    n = 1000000
    sink = Sink(work, 0)
    empty = Outboxd(work, sink, spool=os.path.join(work, "spool-empty"))
    time.sleep(1)
    idle = empty.rss_kb()
    empty.stop()
    print("M   idle RSS with an empty queue: %.1f MB (target < 4 MB)" % (idle / 1024.0))
    spool = os.path.join(work, "spool-1m")
    t0 = time.time()
    mkqueue(spool, n, 1024, "--deferred", "86400")
    sizes = [len(os.listdir(os.path.join(spool, "queue", b)))
             for b in os.listdir(os.path.join(spool, "queue"))]
    print("M   %d messages queued by mkqueue in %.0f s; %d buckets, the largest with %d names"
          % (n, time.time() - t0, len(sizes), max(sizes)))
    for cold in (True, False):
        if cold and not drop_caches():
            print("M   cold start skipped: dropping the page cache needs root")
            continue
        walk = walk_floor(spool)
        if cold:
            drop_caches()
        d = Outboxd(work, sink, spool=spool, wait=False)
        found, index_s, _ = d.wait_indexed()
        rss = d.rss_kb()
        d.stop()
        print("M   %s: index of %d in %.2f s, floor (find, %s) %.2f s: %.2f x%s; first 220 after %.3f s;"
              " RSS %.1f MB (target <= 128 MB)"
              % ("cold" if cold else "warm", found, index_s, "cold" if cold else "warm", walk,
                 index_s / walk, " (target <= 2 x)" if cold else " (target < 10 s)", d.first_220,
                 rss / 1024.0))
    sink.stop()
    shutil.rmtree(spool, ignore_errors=True)


if __name__ == "__main__":
    main()
