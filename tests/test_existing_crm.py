"""Installing pgcti into a database that already has a CRM of its own (docs/dba-guide.md)."""

from __future__ import annotations

import psycopg

from ingester import schema_snapshot
from tests.conftest import run_cli

# A CRM that happens to use the name pgcti's reference CRM had in 0.1.0.
OWN_CRM_SCHEMA = """
CREATE SCHEMA crm;
CREATE TABLE crm.client (id int PRIMARY KEY, name text NOT NULL, phone text);
CREATE TABLE crm.workstation (id int PRIMARY KEY, sip text);
INSERT INTO crm.client VALUES (1, 'Their own client', '8 916 111-22-33');
"""


def _schemas(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
        ).fetchall()
    return {name for (name,) in rows}


def test_a_crm_with_its_own_crm_schema_gets_pgcti_in_cti_only(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(OWN_CRM_SCHEMA)
    before = schema_snapshot.dump(fresh_db, owners=True, schemas=("crm", "public"))
    schemas_before = _schemas(fresh_db)

    out = run_cli("migrate", "--dsn", fresh_db).stdout

    assert "versioned migrations applied" in out
    assert _schemas(fresh_db) - schemas_before == {"cti", "pgcti_migrations"}
    assert schema_snapshot.dump(fresh_db, owners=True, schemas=("crm", "public")) == before
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT name FROM crm.client").fetchall() == [("Their own client",)]
        # Until the DBA's adapters are in, pgcti's placeholders find nobody.
        assert conn.execute("SELECT count(*) FROM cti.crm_lookup('+79161112233')").fetchone() == (
            0,
        )


def test_the_reference_crm_comes_only_when_asked_for(fresh_db):
    run_cli("migrate", "--dsn", fresh_db)
    assert "pgcti_refcrm" not in _schemas(fresh_db)

    out = run_cli("migrate", "--dsn", fresh_db, "--with-reference-crm").stdout

    assert "refcrm_0001_reference_crm" in out
    assert "pgcti_refcrm" in _schemas(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO pgcti_refcrm.client (name) VALUES ('A')")
        conn.execute(
            "INSERT INTO pgcti_refcrm.client_phone (client_id, raw)"
            " SELECT id, '8 (916) 111-22-33' FROM pgcti_refcrm.client"
        )
        assert conn.execute(
            "SELECT client_name FROM cti.crm_lookup('+79161112233')"
        ).fetchall() == [("A",)]
    # Later migrates keep it without the flag.
    assert "database is up to date" in run_cli("migrate", "--dsn", fresh_db).stdout
