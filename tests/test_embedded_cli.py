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
