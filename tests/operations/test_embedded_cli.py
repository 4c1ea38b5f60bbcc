"""`pgcti db start|status|url|stop` on a server of the test's own (its own PGCTI_HOME)."""

from __future__ import annotations

import psycopg

from tests.conftest import run_cli


def test_db_start_status_stop_round_trip(tmp_path):
    env = {"PGCTI_HOME": str(tmp_path / "home")}
    assert run_cli("db", "status", env=env, check=False).returncode == 3

    started = run_cli("db", "start", env=env)
    dsn = started.stdout.strip().splitlines()[-1]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("pgcti",)

    status = run_cli("db", "status", env=env)
    assert status.stdout.startswith("running") and str(tmp_path) in status.stdout
    assert run_cli("db", "url", env=env).stdout.strip() == dsn, "start reuses the running server"

    assert "stopped" in run_cli("db", "stop", env=env).stdout
    assert run_cli("db", "status", env=env, check=False).returncode == 3
    assert "not running" in run_cli("db", "stop", env=env).stdout


def _interpreter_for(as_user: list[str]) -> tuple[str, str] | None:
    """An interpreter the ordinary user can run, of the same Python as ours (compiled wheels),
    with the import path that finds our checkout and our venv's packages.

    Ours may live where the user cannot read it (pyenv under root's home), so Debian's
    /usr/bin/python3 is the second choice."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig

    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, shutil.which("python3", path="/usr/bin:/usr/local/bin")]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [*as_user, candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == wanted:
            checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            paths = dict.fromkeys(
                [checkout, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
            )
            return candidate, os.pathsep.join(paths)
    return None


def test_db_round_trip_as_an_ordinary_user():
    """CI runs as root; the embedded server must work for an ordinary user too (here: nobody)."""
    import os
    import shutil
    import subprocess
    import tempfile

    import pytest

    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    found = _interpreter_for(as_user)
    if found is None:
        pytest.skip("no Python of this version that user nobody can run (ours is unreadable to it)")
    python, import_path = found
    home = tempfile.mkdtemp(prefix="pgcti-user-")
    if as_user:
        shutil.chown(home, "nobody")

    def pgcti(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                *as_user,
                "env",
                f"HOME={home}",
                f"PGCTI_HOME={home}/pgcti",
                python,
                "-m",
                "ingester.cli",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=home,
            env={**os.environ, "PYTHONPATH": import_path},
        )

    try:
        started = pgcti("db", "start")
        assert started.returncode == 0, started.stderr
        dsn = started.stdout.strip().splitlines()[-1]
        owner = subprocess.run(
            ["stat", "-c", "%U", f"{home}/pgcti/pgdata"], capture_output=True, text=True
        )
        assert owner.stdout.strip() == (
            "nobody" if as_user else os.environ.get("USER", owner.stdout.strip())
        )
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("pgcti",)
        assert pgcti("db", "status").stdout.startswith("running")
        assert "stopped" in pgcti("db", "stop").stdout
    finally:
        pgcti("db", "stop")
        shutil.rmtree(home, ignore_errors=True)
