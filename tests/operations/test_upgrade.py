"""Upgrading a database that pgcti 0.1.0 migrated gives the catalog of a fresh install.

tests/fixtures/v0.1.0.sql is such a database (git tag v0.1.0: schemas cti and crm, and
yoyo's record of migrations 0001-0018); procrastinate's migration test is the model.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from ingester.install import schema_snapshot
from tests.conftest import run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0.1.0.sql"


def load_0_1_0(dsn: str) -> None:
    """The roles are the server's; the template database has made them already."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FIXTURE.read_text())


def catalog(dsn: str) -> str:
    """pg_dump of pgcti's schemas: tables, columns, indexes, functions with their bodies,
    triggers, views, types, owners, grants and comments."""
    return schema_snapshot.dump(dsn, owners=True)


def applied_ids(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT migration_id FROM pgcti_migrations._yoyo_migration ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_a_0_1_0_database_upgrades_to_the_catalog_of_a_fresh_install(template_db, fresh_db, dsn):
    load_0_1_0(fresh_db)
    before = catalog(fresh_db)

    plan = run_cli("migrate", "--dsn", fresh_db, "--plan").stdout
    assert "pgcti 0.1.0's migrations would be folded into the baseline" in plan
    assert "new      function cti.facts_from_onlinepbx3(jsonb,timestamp with time zone)" in plan
    assert "changed  function cti.process_in_rounds(cti.raw_event[])" in plan
    assert "+" in plan and "facts_from_onlinepbx3(e.frame" in plan, "the diff is shown"
    assert "nothing was changed" in plan
    assert catalog(fresh_db) == before, "--plan changes nothing"

    run_cli("migrate", "--dsn", fresh_db)
    assert catalog(fresh_db) == catalog(dsn)
    assert applied_ids(fresh_db) == applied_ids(dsn), "0001-0018 became the baseline, then on"
    assert "database is up to date" in run_cli("migrate", "--dsn", fresh_db).stdout


def test_a_dba_override_on_0_1_0_survives_the_upgrade(template_db, fresh_db):
    load_0_1_0(fresh_db)
    override = """CREATE OR REPLACE FUNCTION cti.crm_workstation_for_extension(p_extension text)
        RETURNS bigint LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
        AS $$ SELECT 42::bigint $$"""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(override)

    plan = run_cli("migrate", "--dsn", fresh_db, "--plan").stdout
    assert "kept     function cti.crm_workstation_for_extension(text)" in plan
    run_cli("migrate", "--dsn", fresh_db)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT cti.crm_workstation_for_extension('101')").fetchone() == (42,)
