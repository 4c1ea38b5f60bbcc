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


def test_db_round_trip_as_an_ordinary_user():
    """CI runs as root; the embedded server must work for an ordinary user too (here: nobody)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    home = tempfile.mkdtemp(prefix="pgcti-user-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]

    def pgcti(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                *as_user,
                "env",
                f"HOME={home}",
                f"PGCTI_HOME={home}/pgcti",
                sys.executable,
                "-m",
                "ingester.cli",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=home,
            env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))},
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
