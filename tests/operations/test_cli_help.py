"""The command as a new user meets it: its version, the help of each sub-command, and a
wrong flag answered with the usage of the sub-command it was given to."""

from __future__ import annotations

from importlib import metadata

from tests.conftest import run_cli


def test_version():
    out = run_cli("--version").stdout.strip()
    assert out == f"pgcti {metadata.version('pgcti')}"


def test_a_wrong_flag_shows_the_usage_of_its_sub_command():
    wrong = run_cli("report", "--frm", "2026-01-01", check=False)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: pgcti report ")
    assert "pgcti report: error: unrecognized arguments: --frm 2026-01-01" in wrong.stderr
    nested = run_cli("token", "list", "--bogus", check=False)
    assert nested.returncode == 2 and nested.stderr.startswith("usage: pgcti token list ")


def test_the_helps_say_what_the_actions_and_defaults_are():
    db = run_cli("db", "--help").stdout
    for action in ("start:", "stop:", "status:", "url:"):
        assert action in db
    assert "default 8080" in run_cli("gateway", "--help").stdout
