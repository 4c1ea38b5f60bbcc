"""db/logic: one home per body, `pgcti migrate --plan`, and the guardrails of applying logic."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg

from ingester.install import logic, migrations, schema_snapshot
from ingester.queries import query
from tests.conftest import run_cli

# The functions outside db/logic, in versioned migrations because stored data depends on
# them: call_leg's extension flags (is_extension) and a check on cti.config's Asterisk
# trunk patterns (are_regular_expressions).
IN_THE_BASELINE = {"cti.is_extension", "cti.are_regular_expressions"}


def copy_of_logic(tmp_path: Path) -> Path:
    target = tmp_path / "logic"
    shutil.copytree(logic.logic_dir(), target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def migrate(dsn: str, logic_dir: Path | None = None, *args: str, check: bool = True):
    env = {"PGCTI_LOGIC": str(logic_dir)} if logic_dir else None
    return run_cli("migrate", "--dsn", dsn, *args, env=env, check=check)


def function_source(conn: psycopg.Connection, signature: str) -> str:
    return conn.execute(
        "SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", [signature]
    ).fetchone()[0]


def test_every_body_has_exactly_one_home(conn):
    homes: dict[str, list[str]] = {}
    for logic_file in logic.read_files():
        for group in logic_file.groups:
            if group.kind:
                homes.setdefault(group.name, []).append(logic_file.name)
    assert {name: files for name, files in homes.items() if len(files) > 1} == {}

    rows = conn.execute(query("logic_catalog")).fetchall()
    in_database = {name.split("(", 1)[0] if kind == "FUNCTION" else name for kind, name, _ in rows}
    assert in_database - set(homes) == IN_THE_BASELINE
    assert set(homes) - in_database == set()

    for migration in migrations.migrations_dir().glob("*.sql"):
        created = re.findall(r"CREATE (?:OR REPLACE )?FUNCTION ([\w.]+)", migration.read_text())
        assert set(created) <= IN_THE_BASELINE, f"{migration.name} creates {created}"


def test_each_logic_file_opens_with_its_rules():
    for logic_file in logic.read_files():
        head = logic_file.text.split("\nCREATE", 1)[0]
        assert logic_file.text.startswith("-- "), f"{logic_file.name}: opens with what it is"
        assert "Rule" in head, f"{logic_file.name}: its header states the rules it implements"


def test_plan_on_an_up_to_date_database(dsn):
    assert "database is up to date" in migrate(dsn, None, "--plan").stdout


def test_plan_on_an_empty_database_lists_everything_and_changes_nothing(fresh_db):
    plan = migrate(fresh_db, None, "--plan").stdout
    versioned = sorted(
        p.stem for p in migrations.migrations_dir().glob("*.sql") if ".rollback" not in p.name
    )
    listed = "".join(f"\n    {mid}" for mid in versioned)
    assert f"versioned migrations would be applied: {len(versioned)}{listed}" in plan
    for logic_file in logic.read_files():
        assert f"    {logic_file.name}\n" in plan
    assert "new      function cti.derive_calls(" in plan
    assert "nothing was changed" in plan
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regnamespace('cti')").fetchone() == (None,)


def test_a_dba_override_survives_plan_and_migrate(conn, dsn, tmp_path):
    conn.execute(
        """CREATE OR REPLACE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
           LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT 7::bigint $$"""
    )
    changed = copy_of_logic(tmp_path)
    edit(
        changed / "20_crm_adapters.sql",
        "-- pgcti: keep-existing",
        "-- pgcti: keep-existing\n-- edited",
    )

    plan = migrate(dsn, changed, "--plan").stdout
    assert "logic files would be applied: 2\n    20_crm_adapters.sql\n    90_grants.sql" in plan
    assert "kept     function cti.crm_ring_recipients(text)" in plan
    migrate(dsn, changed)
    assert conn.execute("SELECT * FROM cti.crm_ring_recipients('1')").fetchall() == [(7,)]
    assert "database is up to date" in migrate(dsn, changed).stdout


def test_a_function_that_feeds_stored_data_changes_only_by_a_versioned_migration(
    conn, dsn, tmp_path
):
    before = function_source(conn, "cti.phone_from_digits(text,cti.config)")
    changed = copy_of_logic(tmp_path)
    edit(
        changed / "10_phone.sql",
        "length(v_digits) BETWEEN 8 AND 15 THEN '+' || v_digits END",
        "length(v_digits) BETWEEN 7 AND 15 THEN '+' || v_digits END",
    )

    refused = migrate(dsn, changed, check=False)
    assert refused.returncode == 1
    assert "cti.phone_from_digits feeds stored data" in refused.stderr
    assert "versioned migration" in refused.stderr
    assert function_source(conn, "cti.phone_from_digits(text,cti.config)") == before, (
        "nothing changed"
    )

    # The supported way: a versioned migration replaces it and recomputes what it stored.
    body = next(
        g.sql
        for g in logic.LogicFile(changed / "10_phone.sql").groups
        if g.name == "cti.phone_from_digits"
    )
    versioned = tmp_path / "migrations"  # the next release's db/migrations
    shutil.copytree(migrations.migrations_dir(), versioned)
    newest = sorted(p.stem for p in versioned.glob("0*.sql") if ".rollback" not in p.name)[-1]
    (versioned / "0099_seven_digit_international.sql").write_text(
        "-- Numbers with '+' may have 7 digits; recompute the stored E.164 values.\n"
        f"-- depends: {newest}\n\n"
        f"SET LOCAL ROLE cti_owner;\n{body}\nUPDATE pgcti_refcrm.client_phone SET raw = raw;\n"
        "SELECT cti.refresh_phone_directory();\n"
    )
    (versioned / "0099_seven_digit_international.rollback.sql").write_text("-- cannot be undone\n")
    run_cli(
        "migrate",
        "--dsn",
        dsn,
        env={"PGCTI_LOGIC": str(changed), "PGCTI_MIGRATIONS": str(versioned)},
    )
    assert function_source(conn, "cti.phone_from_digits(text,cti.config)") != before
    assert conn.execute("SELECT cti.normalize_phone('+1234567')").fetchone() == ("+1234567",)


def test_a_changed_signature_or_result_needs_a_versioned_migration(conn, dsn, tmp_path):
    wider = copy_of_logic(tmp_path / "a")
    edit(
        wider / "55_derive_calls.sql",
        "cti.call_payload(p_call cti.call)",
        "cti.call_payload(p_call cti.call, p_extra int DEFAULT 0)",
    )
    refused = migrate(dsn, wider, check=False)
    assert refused.returncode == 1 and "cti.call_payload now has 2 signatures" in refused.stderr

    other_result = copy_of_logic(tmp_path / "b")
    edit(
        other_result / "55_derive_calls.sql",
        "cti.call_payload(p_call cti.call) RETURNS jsonb",
        "cti.call_payload(p_call cti.call) RETURNS json",
    )
    refused = migrate(dsn, other_result, check=False)
    assert refused.returncode == 1
    assert "cannot change return type" in refused.stderr and "versioned migration" in refused.stderr
    assert conn.execute(
        "SELECT count(*) FROM pg_proc WHERE proname = 'call_payload'"
    ).fetchone() == (1,)


def test_a_dropped_function_needs_a_versioned_migration(conn, dsn, tmp_path):
    without = copy_of_logic(tmp_path)
    path = without / "50_call_facts.sql"
    text = path.read_text()
    start = text.index("-- Fold call p_gone into p_keep")
    path.write_text(text[:start])
    refused = migrate(dsn, without, check=False)
    assert refused.returncode == 1
    assert "cti.merge_calls is in the database but no longer in db/logic" in refused.stderr


def test_reapplying_the_logic_keeps_every_grant_and_twice_changes_nothing(conn, dsn):
    before = schema_snapshot.dump(dsn, owners=True)
    conn.execute("DELETE FROM cti.logic_file")  # as if every file had changed
    again = migrate(dsn).stdout
    assert f"logic files applied: {len(logic.read_files())}" in again
    assert "changed" not in again and "new " not in again, "same bodies, same catalog"
    assert schema_snapshot.dump(dsn, owners=True) == before
    assert "database is up to date" in migrate(dsn).stdout


def test_the_architecture_table_names_each_object_in_its_file():
    """docs/architecture.md maps rule -> file -> function; each object is in its file's row."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "db/" in line]
    for logic_file in logic.read_files():
        row = next((r for r in rows if f"`db/logic/{logic_file.name}`" in r), None)
        assert row is not None, f"no row for {logic_file.name} in docs/architecture.md"
        for group in logic_file.groups:
            if group.kind in ("FUNCTION", "VIEW"):
                assert f"`{group.name}`" in row, f"{group.name} not in the row of {logic_file.name}"
            elif group.kind == "TRIGGER":
                assert f"`{group.name.rsplit('.', 1)[1]}`" in row, group.name
