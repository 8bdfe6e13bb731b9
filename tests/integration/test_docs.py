"""The man pages: outbox.conf(5)'s key reference matches the config table,
and mandoc finds nothing to warn about."""

import glob
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
