"""The man pages: outbox.conf(5)'s key reference matches the config table,
and mandoc finds nothing to warn about."""

import glob
import re
import os
import shutil
import subprocess

import pytest

from conftest import BUILD

TOP = os.path.join(os.path.dirname(__file__), "..", "..")


def test_conf_page_generated_from_the_table():
    with open(os.path.join(TOP, "man", "outbox.conf.5.in"), "rb") as f:
        r = subprocess.run([os.path.join(BUILD, "confdoc")], stdin=f, capture_output=True, check=True)
    with open(os.path.join(TOP, "man", "outbox.conf.5"), "rb") as f:
        committed = f.read()
    assert r.stdout == committed, "man/outbox.conf.5 is stale: run 'make man'"
    for key in (b"retry_min", b"password_command", b"idle_timeout", b"plaintext_auth"):
        assert b".It Ic " + key + b" No = " in committed


def test_every_key_in_the_example_config_is_documented():
    with open(os.path.join(TOP, "man", "outbox.conf.5"), "rb") as f:
        page = f.read()
    with open(os.path.join(TOP, "conf", "outbox.conf")) as f:
        for line in f:
            line = line.strip().lstrip(";")
            if "=" in line and not line.startswith(("[", " ")):
                key = line.split("=", 1)[0].strip()
                if key.isidentifier():
                    assert b".It Ic " + key.encode() + b" " in page, key


@pytest.mark.skipif(not shutil.which("mandoc"), reason="mandoc not installed")
def test_mandoc_lint_clean():
    pages = glob.glob(os.path.join(TOP, "man", "*.[1-8]"))
    assert len(pages) == 3
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning"] + pages, capture_output=True)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", r.stdout + r.stderr


def _outbox_page():
    with open(os.path.join(TOP, "man", "outbox.1")) as f:
        return f.read()


def test_every_sendmail_flag_is_in_outbox_1():
    """The flags sendmail_args.c acts on, and every one of its table of
    ignored flags, each as an .Fl in outbox(1)."""
    import re
    with open(os.path.join(TOP, "tool", "sendmail_args.c")) as f:
        src = f.read()
    acted = re.findall(r'strcmp\(a, "(-[A-Za-z]+)"\) == 0', src)
    ignored = re.findall(r'^\t\{ "(-[A-Za-z]+)", (?:true|false), "', src, re.M)
    assert len(acted) >= 8 and len(ignored) >= 20, (acted, ignored)
    flags = set(acted + ignored + ["-f", "-r", "-F", "-C", "-q"])
    page = _outbox_page()
    documented = set("-" + m for m in re.findall(r"\bFl ([A-Za-z]+)", page))
    if "Fl o Ns Ar X" in page:
        documented.add("-oX")        # any other -oX: the table's catch-all
    assert flags <= documented, sorted(flags - documented)


def test_every_subcommand_is_in_outbox_1():
    """Each subcommand outbox's usage names has its own entry in outbox(1)."""
    import re
    from conftest import OUTBOX
    r = subprocess.run([OUTBOX, "--help"], capture_output=True, text=True)
    words = set(re.findall(r"(?:\] |\| )([a-z][a-z0-9]+)", r.stdout + r.stderr))
    assert {"sendmail", "send", "queue", "probe", "oauth2", "config", "metrics", "status",
            "hold", "show", "flush", "delete", "release"} <= words, words
    page = _outbox_page()
    for w in sorted(words):
        assert re.search(r"^\.(It Cm|Ss outbox|Nm outbox Cm) %s\b" % w, page, re.M), w


@pytest.mark.skipif(not shutil.which("mandoc"), reason="mandoc not installed")
def test_mandoc_lint_style_clean_but_for_our_own_cross_references():
    """mandoc's style level too: its only complaint may be that the other
    outbox pages are not installed on this machine."""
    pages = glob.glob(os.path.join(TOP, "man", "*.[1-8]"))
    r = subprocess.run(["mandoc", "-Tlint", "-Wstyle"] + pages, capture_output=True, text=True)
    left = [l for l in (r.stdout + r.stderr).splitlines()
            if not re.search(r"referenced manual not found: Xr (outbox|outboxd|outbox\.conf) [158]", l)]
    assert left == [], "\n".join(left)
