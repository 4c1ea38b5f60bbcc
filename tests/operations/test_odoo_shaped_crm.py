"""Issue 28's proof: pgcti installed into a database of Odoo's shape, from docs/odoo.md.

The tables belong to another role (odoo), the DBA is not a superuser and not their owner,
the database's collation is not C (C.UTF-8), leads are records apart from partners. Every
block of docs/odoo.md is run as the role it names; the suite runs on PostgreSQL 15 and 18.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ingester.install import schema_snapshot
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import _janitor, doc_sql_block, run_cli, trigger_calls
from tests.support.crm_fixture import LINE, builder
from tests.support.live import IngestProcess, SimulatorThread, wait_for


def doc_block(first_line: str) -> str:
    return doc_sql_block("odoo.md", first_line)


# Odoo's data: a company with a contact whose salesperson is Petrova; two users with VoIP
# extensions 101 and 102 in one sales team; a lead from the website that has no partner.
ODOO_DATA = """
INSERT INTO public.res_partner (id, name, is_company) VALUES
    (1, 'Anna Petrova', false), (2, 'Boris Sidorov', false), (10, 'Vektor LLC', true);
UPDATE public.res_partner SET commercial_partner_id = id;
INSERT INTO public.res_partner (id, name, parent_id, commercial_partner_id, user_id, phone, mobile) VALUES
    (11, 'Olga Smirnova', 10, 10, 1, '8 (916) 111-22-33', '+7 903 000-00-01');
SELECT setval('public.res_partner_id_seq', 100);
INSERT INTO public.res_users (id, login, partner_id, voip_username) VALUES
    (1, 'petrova', 1, '101'), (2, 'sidorov', 2, '102');
INSERT INTO public.crm_team (id, name) VALUES (1, '{"en_US": "Sales"}');
INSERT INTO public.crm_team_member (crm_team_id, user_id) VALUES (1, 1), (1, 2);
INSERT INTO public.crm_stage (id, name, sequence, is_won) VALUES
    (1, '{"en_US": "New"}', 1, false), (2, '{"en_US": "Won"}', 9, true);
INSERT INTO public.crm_lead (id, name, contact_name, phone, user_id, team_id, stage_id) VALUES
    (500, 'Website form', 'Ivan Lead', '+7 (926) 555-44-33', 2, 1, 1);
SELECT setval('public.crm_lead_id_seq', 500);
"""

KNOWN, LEAD_ONLY, UNKNOWN = "8 916 111 22 33", "+7 926 555 44 33", "+7 999 123 45 67"


@pytest.fixture
def odoo(server_dsn: str, template_db: str) -> Iterator[dict[str, str]]:
    """A C.UTF-8 database owned by a DBA who may create roles, Odoo's tables owned by odoo.
    (The template database keeps pgcti's roles in use, so they exist, as on a server where
    another database has pgcti: the DBA needs ADMIN OPTION on them since PostgreSQL 16.)"""
    pid = os.getpid()
    name, owner, dba = f"pgcti_odoo_{pid}", f"odoo_{pid}", f"odoo_dba_{pid}"
    made = [owner, dba]
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        for role in made:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.execute(f'CREATE ROLE "{owner}" LOGIN')
        admin.execute(f'CREATE ROLE "{dba}" LOGIN CREATEROLE')
        admin.execute(f'GRANT cti_owner, cti_client, cti_ingester TO "{dba}" WITH ADMIN OPTION')
        admin.execute(
            f'CREATE DATABASE "{name}" OWNER "{dba}" TEMPLATE template0 LOCALE \'C.UTF-8\''
        )
    superuser = make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(superuser, autocommit=True) as admin:
        admin.execute(f'GRANT CREATE ON SCHEMA public TO "{owner}"')
    roles = {
        "superuser": superuser,
        "odoo": make_conninfo(superuser, user=owner),
        "dba": make_conninfo(superuser, user=dba),
    }

    def login(role: str) -> str:
        made.append(role)
        return make_conninfo(superuser, user=role)

    roles["login"] = login  # type: ignore[assignment]
    try:
        yield roles
    finally:
        _janitor(server_dsn, name).drop()
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            for role in reversed(made):
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _run_as(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


def test_pgcti_in_an_odoo_database_from_the_docs(odoo, tmp_path):
    superuser, owner, dba = odoo["superuser"], odoo["odoo"], odoo["dba"]
    _run_as(owner, doc_block("-- Odoo's tables (owned by the role odoo)."))
    _run_as(owner, ODOO_DATA)
    odoo_before = schema_snapshot.dump(superuser, owners=True, schemas=("public",))

    run_cli("migrate", "--dsn", dba)
    adapters = tmp_path / "odoo_adapters"
    adapters.mkdir()
    (adapters / "0001_pgcti_odoo.sql").write_text(doc_block("-- odoo_adapters/0001_pgcti_odoo.sql"))
    (adapters / "0001_pgcti_odoo.rollback.sql").write_text(
        doc_block("-- odoo_adapters/0001_pgcti_odoo.rollback.sql")
    )
    include = ("--include", str(adapters))

    # Without the owner's part: one line, who must run what, nothing changed, exit 2.
    refused = run_cli("migrate", "--dsn", dba, *include, check=False)
    assert refused.returncode == 2, refused
    assert "Traceback" not in refused.stderr
    line = refused.stderr.strip().splitlines()[-1]
    # USAGE on the schema public is the DBA's to grant (it owns the database); the rest is odoo's.
    assert "0001_pgcti_odoo.sql: GRANT SELECT ON public.res_users TO cti_owner and 6 more" in line
    assert f"can only be run by the owner (odoo_{os.getpid()})" in line, line
    assert "crm-owner-sql" in line and "nothing was changed" in line
    with psycopg.connect(dba) as conn:
        assert conn.execute("SELECT count(*) FROM cti.phone_source").fetchone() == (0,)

    # The owner runs exactly what crm-owner-sql prints; then the plan, then the install.
    owner_sql = run_cli("crm-owner-sql", "--dsn", dba, *include).stdout
    assert "GRANT SELECT, TRIGGER ON public.res_partner TO cti_owner;" in owner_sql
    assert "USAGE ON SEQUENCE public.crm_lead_id_seq" in owner_sql
    _run_as(owner, owner_sql)
    assert (
        "nothing for the CRM's owner to run"
        in run_cli("crm-owner-sql", "--dsn", dba, *include).stdout
    )
    plan = run_cli("migrate", "--dsn", dba, *include, "--plan").stdout
    assert "+ trigger pgcti_phone_phone_write ON res_partner" in plan, plan
    assert "+ trigger pgcti_phone_mobile_update ON crm_lead" in plan, plan
    assert "nothing was changed" in plan
    run_cli("migrate", "--dsn", dba, *include)

    # Logins, then doctor is green.
    pid = os.getpid()
    ingester, desk_1, desk_2 = f"odoo_ing_{pid}", f"odoo_desk1_{pid}", f"odoo_desk2_{pid}"
    login = odoo["login"]
    with psycopg.connect(dba, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{ingester}" LOGIN IN ROLE cti_ingester')
        conn.execute("INSERT INTO cti.ingester_login (login) VALUES (%s)", [ingester])
        for desk, user_id in ((desk_1, 1), (desk_2, 2)):
            conn.execute(f'CREATE ROLE "{desk}" LOGIN IN ROLE cti_client')
            conn.execute(
                "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
                [desk, user_id],
            )
    doctor = run_cli("doctor", "--dsn", dba, check=False)
    assert "FAIL" not in doctor.stdout and "0 failed" in doctor.stdout, doctor.stdout

    # Calls from the simulator: a partner, a number only a lead holds, an unknown number.
    sim = SimulatorThread()
    ingest = IngestProcess(login(ingester), sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="the ingester to subscribe")
        sim.send(pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
        sim.send(pbx.inbound_answered(builder(2), LEAD_ONLY, LINE, "102"))
        sim.send(pbx.inbound_answered(builder(3), UNKNOWN, LINE, "101"))

        def cards(desk: str) -> list[dict]:
            with psycopg.connect(login(desk)) as conn:
                rows = conn.execute("SELECT type, payload FROM cti.pull_commands_v1()").fetchall()
            return [payload for kind, payload in rows if kind == "open_card"]

        wait_for(lambda: len(cards(desk_1)) >= 2, what="desk 1's two cards")
        wait_for(lambda: len(cards(desk_2)) >= 1, what="desk 2's card")
    finally:
        assert ingest.stop() == 0
        sim.close()
    olga, unknown = cards(desk_1)[:2]
    (ivan,) = cards(desk_2)
    assert (olga["client_id"], olga["client_name"], olga["company"]) == (
        11,
        "Olga Smirnova",
        "Vektor LLC",
    )
    assert (olga["manager_surname"], olga["record_kind"], olga["match"]) == (
        "Petrova",
        "client",
        "exact",
    )
    assert (ivan["client_id"], ivan["client_name"], ivan["record_kind"]) == (
        500,
        "Ivan Lead",
        "lead",
    )
    assert ivan["match"] == "exact" and ivan["manager_surname"] == "Sidorov"
    assert (unknown["record_kind"], unknown["match"]) == ("lead", "new")
    with psycopg.connect(superuser) as conn:
        assert conn.execute("SELECT count(*) FROM public.res_partner").fetchone() == (4,)
        leads = conn.execute("SELECT id, phone FROM public.crm_lead ORDER BY id").fetchall()
        assert leads == [(500, "+7 (926) 555-44-33"), (unknown["client_id"], "+79991234567")]
        kinds = conn.execute(
            "SELECT external_number, client_id, client_kind FROM cti.call_history_v1 ORDER BY call_id"
        ).fetchall()
        assert kinds == [
            ("+79161112233", 11, "client"),
            ("+79265554433", 500, "lead"),
            ("+79991234567", unknown["client_id"], "lead"),
        ]

    # Odoo's own writes: only a changed phone fires pgcti's trigger.
    def fired(statement: str) -> int:
        return trigger_calls(superuser, statement, role=f"odoo_{os.getpid()}")

    assert fired("UPDATE public.res_partner SET write_date = now()") == 0
    assert fired("UPDATE public.crm_lead SET stage_id = 2") == 0
    assert fired("UPDATE public.res_partner SET phone = '+7 916 111 22 34' WHERE id = 11") == 1

    # The way back. A report view of the DBA's over pgcti: the rollback refuses and lists it.
    _run_as(dba, "CREATE VIEW public.pgcti_daily AS SELECT * FROM cti.daily_call_stats_v1")
    blocked = run_cli("migrate", "--dsn", dba, *include, "--rollback", "all", check=False)
    assert blocked.returncode == 2, blocked
    assert "pgcti_daily (uses view cti.daily_call_stats_v1)" in blocked.stderr, blocked.stderr
    assert "--drop-dependants" in blocked.stderr and "Traceback" not in blocked.stderr
    _run_as(dba, "DROP VIEW public.pgcti_daily")
    # Without the owner's part: one line again.
    blocked = run_cli("migrate", "--dsn", dba, *include, "--rollback", "all", check=False)
    assert blocked.returncode == 2 and "crm-owner-sql" in blocked.stderr, blocked
    assert "Traceback" not in blocked.stderr
    owner_rollback = run_cli("crm-owner-sql", "--dsn", dba, *include, "--rollback").stdout
    assert (
        "DROP TRIGGER IF EXISTS pgcti_phone_phone_update ON public.res_partner;" in owner_rollback
    )
    assert "REVOKE SELECT, TRIGGER ON public.res_partner FROM cti_owner;" in owner_rollback
    _run_as(owner, owner_rollback)
    rolled = run_cli("migrate", "--dsn", dba, *include, "--rollback", "all").stdout
    assert "0001_pgcti_odoo" in rolled and "0001_baseline" in rolled
    assert schema_snapshot.dump(superuser, owners=True, schemas=("public",)) == odoo_before
    with psycopg.connect(superuser) as conn:
        assert conn.execute("SELECT to_regnamespace('cti')").fetchone() == (None,)


def test_an_adapter_goes_back_to_pgctis_placeholder(dsn):
    # The reference CRM overrides crm_deals, which the sales funnel's view uses: DROP fails,
    # a reset puts the placeholder in its place and keeps the view.
    out = run_cli("adapters", "reset", "crm_deals", "--dsn", dsn).stdout
    assert "reset cti.crm_deals" in out
    with psycopg.connect(dsn) as conn:
        body = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = 'cti.crm_deals'::regproc"
        ).fetchone()[0]
        assert "pgcti placeholder" in body
        assert conn.execute("SELECT count(*) FROM cti.sales_funnel_v1").fetchone()[0] >= 0
    wrong = run_cli("adapters", "reset", "crm_nonsense", "--dsn", dsn, check=False)
    assert wrong.returncode == 2 and "the adapters are: crm_lookup" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_failing_adapter_migration_is_one_line(dsn, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "0001_broken.sql").write_text(
        "-- A broken adapter.\n-- depends: 0001_baseline\n\n"
        "CREATE TABLE public.ok_so_far (id int);\n"
        "SELECT cti.attach_phone_column('public.no_such_table', 'phone');\n"
    )
    (mine / "0001_broken.rollback.sql").write_text("DROP TABLE public.ok_so_far;\n")
    out = run_cli("migrate", "--dsn", dsn, "--include", str(mine), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("pgcti migrate: 0001_broken.sql: SELECT cti.attach_phone_column(")
    assert 'relation "public.no_such_table" does not exist' in line
    assert line.endswith("nothing was changed")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('public.ok_so_far')").fetchone() == (None,)
    # An error the server gives no position for: the statement is found all the same.
    (mine / "0001_broken.sql").write_text(
        "-- A broken adapter.\n-- depends: 0001_baseline\n\n"
        "CREATE TABLE public.ok_so_far (id int);\n"
        "DROP FUNCTION cti.no_such_function(int);\n"
    )
    out = run_cli("migrate", "--dsn", dsn, "--include", str(mine), check=False)
    line = out.stderr.strip().splitlines()[-1]
    assert (
        out.returncode == 2 and "0001_broken.sql: DROP FUNCTION cti.no_such_function(int);" in line
    )
