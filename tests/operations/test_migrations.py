"""Migrations: file names, up -> down -> up, idempotent `pgcti migrate`, the schema snapshot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg

from ingester import embedded
from ingester.install import logic, migrations, outside, schema_snapshot
from tests.conftest import _janitor, dsn_for, run_cli

MIGRATIONS = migrations.migrations_dir()
SNAPSHOT = Path(__file__).resolve().parents[2] / "db" / "schema.sql"


def _cti_objects(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """SELECT n.nspname || '.' || c.relname FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('cti', 'crm')
               UNION ALL
               SELECT n.nspname || '.' || p.proname FROM pg_proc p
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('cti', 'crm')
               UNION ALL
               SELECT nspname FROM pg_namespace WHERE nspname IN ('cti', 'crm')"""
        ).fetchall()
    return sorted(r[0] for r in rows)


def test_migration_files_are_named_numbered_and_paired():
    names = sorted(p.name for p in MIGRATIONS.glob("*.sql"))
    forward = [n for n in names if not n.endswith(".rollback.sql")]
    assert forward, "no migrations found"
    numbers = []
    for name in forward:
        match = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.sql", name)
        assert match, f"{name}: want NNNN_lower_snake_case.sql"
        numbers.append(int(match.group(1)))
        assert name.replace(".sql", ".rollback.sql") in names, f"{name} has no .rollback.sql"
        head = (MIGRATIONS / name).read_text().splitlines()[:2]
        assert head[0].startswith("-- ") and len(head[0]) > 10, f"{name}: first line describes it"
        assert head[1].startswith("-- depends:"), f"{name}: second line is '-- depends:'"
    assert numbers == list(range(1, len(numbers) + 1)), "numbers are consecutive from 0001"
    assert all(n.replace(".rollback.sql", ".sql") in names for n in names), "orphan rollback"


def test_up_down_up_on_an_empty_database(fresh_db):
    first = migrations.apply(fresh_db)
    assert len(first.migrations) == len(list(MIGRATIONS.glob("[0-9]*[0-9a-z].sql"))) - len(
        list(MIGRATIONS.glob("*.rollback.sql"))
    )
    assert first.logic.applied == [f.name for f in logic.read_files()]
    after_first = schema_snapshot.dump(fresh_db, owners=True)
    assert "CREATE SCHEMA cti" in after_first

    rolled = migrations.rollback(fresh_db).migrations
    assert rolled == list(reversed(first.migrations))
    assert _cti_objects(fresh_db) == []

    again = migrations.apply(fresh_db)
    assert (again.migrations, again.logic.applied) == (first.migrations, first.logic.applied)
    assert schema_snapshot.dump(fresh_db, owners=True) == after_first


def test_cli_migrate_is_idempotent_and_rolls_back(fresh_db):
    first = run_cli("migrate", "--dsn", fresh_db)
    assert "applied" in first.stdout and "0001_baseline" in first.stdout
    objects = _cti_objects(fresh_db)

    second = run_cli("migrate", "--dsn", fresh_db)
    assert "up to date" in second.stdout
    assert _cti_objects(fresh_db) == objects

    listing = run_cli("migrate", "--dsn", fresh_db, "--list").stdout
    assert "pending" not in listing and "applied  0001_baseline" in listing

    run_cli("migrate", "--dsn", fresh_db, "--rollback", "all")
    assert _cti_objects(fresh_db) == []
    assert "pending  0001_baseline" in run_cli("migrate", "--dsn", fresh_db, "--list").stdout


def test_schema_snapshot_is_current():
    # pg_dump deparses views differently per server major, so the snapshot is always made
    # on the embedded default server (as `make schema` does), whichever server the suite runs on.
    current = schema_snapshot.snapshot(embedded.start())
    assert SNAPSHOT.exists(), "db/schema.sql is missing: run `make schema`"
    assert SNAPSHOT.read_text() == current, (
        "db/schema.sql is stale: run `make schema` and commit it"
    )


def test_snapshots_leave_out_the_options_the_server_assigns():
    line = "ALTER TABLE ONLY cti.call ALTER COLUMN source SET ({});"
    assert schema_snapshot._without_server_options(line.format("pg_attver=669064552")) is None
    assert schema_snapshot._without_server_options(
        line.format("pg_attver=22229984, n_distinct=5")
    ) == line.format("n_distinct=5")
    assert schema_snapshot._without_server_options(line.format("n_distinct=-0.5")) == line.format(
        "n_distinct=-0.5"
    )
    quoted = 'ALTER TABLE ONLY crm."a b" ALTER COLUMN "c, d" SET (pg_attver=1, n_distinct=2);'
    assert schema_snapshot._without_server_options(quoted) == (
        'ALTER TABLE ONLY crm."a b" ALTER COLUMN "c, d" SET (n_distinct=2);'
    )


def test_this_server_assigns_no_option_the_snapshots_do_not_know(server_dsn):
    # A future minor release that puts a new option on every column fails here first, with
    # the server's version in the message (check_server_options raises it).
    schema_snapshot.check_server_options(server_dsn)
    assert schema_snapshot.unknown_server_options(server_dsn) == []


def test_a_recreated_table_dumps_the_same_but_an_option_set_by_hand_shows(fresh_db):
    def dump() -> str:
        return schema_snapshot.dump(fresh_db, owners=True, schemas=("probe",))

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA probe; CREATE TABLE probe.t (a text, b int)")
        first = dump()
        conn.execute("DROP TABLE probe.t; CREATE TABLE probe.t (a text, b int)")
        assert dump() == first, "a column created again is the same column"

        conn.execute("ALTER TABLE probe.t ALTER COLUMN a SET (n_distinct = 5)")
        with_option = dump()
        assert with_option != first
        assert "ALTER TABLE ONLY probe.t ALTER COLUMN a SET (n_distinct=5);" in with_option
        conn.execute("ALTER TABLE probe.t ALTER COLUMN a RESET (n_distinct)")
        assert dump() == first


def test_databases_rolled_back_at_once_all_finish(server_dsn, template_db):
    """pgcti's roles are the server's, not a database's: rollbacks of several databases at
    the same moment each try to drop them, and two could deadlock on a role (seen when the
    suite first ran in parallel). The one that loses keeps the role, as when another
    database still uses it, and the rollback finishes. The databases hold the reference CRM,
    whose adapters the analytics views read: its rollback puts pgcti's placeholders back."""
    for round_ in range(6):
        names = [f"pgcti_rb_{os.getpid()}_{round_}_{n}" for n in range(2)]
        for name in names:
            _janitor(server_dsn, name, template_dbname=template_db).init()
        try:
            rollbacks = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "ingester.cli",
                        "migrate",
                        "--dsn",
                        dsn_for(server_dsn, name),
                        "--rollback",
                        "all",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for name in names
            ]
            results = [(r.wait(120), r.stdout.read()) for r in rollbacks]
            assert [code for code, _ in results] == [0] * len(names), results
            for name in names:  # pgcti and its reference CRM gone (their views read its adapters)
                assert _cti_objects(dsn_for(server_dsn, name)) == []
                with psycopg.connect(dsn_for(server_dsn, name)) as c:
                    assert c.execute("SELECT to_regnamespace('pgcti_refcrm')").fetchone() == (None,)
        finally:
            for name in names:
                _janitor(server_dsn, name).drop()


def test_a_rollback_refuses_to_drop_a_crms_objects_unless_told_and_then_says_what_went(dsn):
    """A CRM's view over an analytics view and its foreign key to cti.call would go with
    pgcti by cascade: refused, each named; with --drop-dependants, dropped and named again,
    and the CRM's table itself stays."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.crm_daily AS SELECT * FROM cti.daily_call_stats_v1")
        conn.execute(
            "CREATE TABLE public.crm_call_note (id int PRIMARY KEY, call_id bigint"
            " CONSTRAINT crm_call_note_call REFERENCES cti.call (id), body text)"
        )
    refused = run_cli("migrate", "--dsn", dsn, "--rollback", "all", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused
    assert "2 object(s) of yours" in refused.stderr, refused.stderr
    assert "view public.crm_daily (uses view cti.daily_call_stats_v1)" in refused.stderr
    fk = "constraint crm_call_note_call on table public.crm_call_note (uses table cti.call)"
    assert fk in refused.stderr
    assert "--drop-dependants" in refused.stderr
    with psycopg.connect(dsn) as conn:  # nothing was changed
        assert conn.execute("SELECT to_regclass('public.crm_daily') IS NOT NULL").fetchone()[0]

    done = run_cli("migrate", "--dsn", dsn, "--rollback", "all", "--drop-dependants").stdout
    assert "0001_baseline" in done
    assert "dropped with pgcti (--drop-dependants): " in done
    assert "constraint crm_call_note_call on table public.crm_call_note" in done
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT to_regnamespace('cti'), to_regclass('public.crm_daily'),"
            " to_regclass('public.crm_call_note') IS NOT NULL"
        ).fetchone() == (None, None, True)
        assert conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'crm_call_note_call'"
        ).fetchone() == (0,)


def test_every_role_a_migration_makes_is_one_migrate_reports():
    """`migrate` lists pgcti's roles outside its schemas (added, removed, kept) from
    outside.ROLES: every CREATE ROLE of a versioned migration is in it, and no other."""
    made = {
        m.group(1)
        for path in MIGRATIONS.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
        for m in re.finditer(r"CREATE ROLE (\w+)", path.read_text())
    }
    assert made == set(outside.ROLES)


def test_a_first_install_lists_each_role_it_adds_and_a_rollback_each_it_removes(own_server):
    """On a server where no database has pgcti yet, --plan and migrate name every role they
    add outside pgcti's schemas, and --rollback all every role it removes."""
    plan = run_cli("migrate", "--dsn", own_server, "--plan").stdout
    done = run_cli("migrate", "--dsn", own_server).stdout
    gone = run_cli("migrate", "--dsn", own_server, "--rollback", "all").stdout
    for role in outside.ROLES:
        assert re.search(rf"\+ role +{role}\n", plan) and re.search(rf"\+ role +{role}\n", done), (
            plan
        )
        assert re.search(rf"- role +{role}\n", gone), gone
