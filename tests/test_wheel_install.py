"""Installed from a wheel (not a checkout), `pgcti migrate` still finds and applies the migrations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, as `pip install /path/to/checkout` does, so that
    setuptools' build directory never lands in the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "ingester", source / "ingester", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "db", source / "db", ignore=ignore)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    return next((tmp_path / "dist").glob("pgcti-*.whl"))


def test_an_installed_wheel_migrates_an_empty_database(tmp_path, fresh_db):
    wheel = build_wheel(tmp_path)
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    shipped = sorted(p.name for p in (site / "ingester" / "sql" / "migrations").glob("*.sql"))
    assert shipped == sorted(p.name for p in (ROOT / "db" / "migrations").glob("*.sql"))

    # Run from the installed copy: its directory first on the path, and the checkout's editable
    # install (an import hook of this environment, which would win) out of the way. The
    # dependencies still come from this environment.
    launcher = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "sys.meta_path[:] = [f for f in sys.meta_path "
        "if not getattr(f, '__module__', '').startswith('__editable__')]; "
        "from ingester import cli, migrations; "
        "print('migrations from', migrations.migrations_dir(), flush=True); "
        "sys.argv[0] = 'pgcti'; sys.exit(cli.main())"
    )
    env = {k: v for k, v in os.environ.items() if k != "PGCTI_MIGRATIONS"}
    result = subprocess.run(
        [sys.executable, "-c", launcher, str(site), "migrate", "--dsn", fresh_db],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"migrations from {site}" in result.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "SELECT to_regprocedure('cti.process_in_rounds(cti.raw_event[])')"
        ).fetchone()[0]
