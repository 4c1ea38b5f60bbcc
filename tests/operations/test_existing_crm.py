"""Installing pgcti into a database that already has a CRM of its own (docs/dba-guide.md)."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester.install import schema_snapshot
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import doc_sql_block, run_cli
from tests.support.crm_fixture import LINE, builder
from tests.support.live import IngestProcess, SimulatorThread, wait_for

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


# ---------------------------------------------------------------------------------------
# The proof (issue 11): a CRM of a shape pgcti has never seen, in a schema called crm,
# installed by a DBA who is not a superuser, with the steps of docs/dba-guide.md and its
# worked example in docs/adapters.md only.


def guide_block(first_line: str) -> str:
    return doc_sql_block("adapters.md", first_line)


CRM_DATA = """
INSERT INTO crm.orgs VALUES (1, 'Vektor LLC');
INSERT INTO crm.staff VALUES (7, 'Petrova', '101', true), (8, 'Sidorov', '102', true), (9, 'Orlov', '103', false);
INSERT INTO crm.customers (customer_no, title, org_id, account_manager) VALUES
    (5001, 'Olga Smirnova', 1, 7), (5002, 'Pavel Gromov', NULL, 8);
INSERT INTO crm.customer_phones (customer_no, phone_text) VALUES
    (5001, '8-916-111-22-33 доб. 12'),
    (5002, '8 (495) 100-00-02, 8 (495) 100-00-03');
INSERT INTO crm.desks VALUES (41, 'desk-a', '101'), (42, 'desk-b', '102');
"""


@pytest.fixture
def crm_dba(server_dsn, fresh_db):
    """A DBA who owns the database and may create roles, and is not a superuser."""
    name = f"pgcti_it_dba_{os.getpid()}"
    made = [name]
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{name}"')
        admin.execute(f'CREATE ROLE "{name}" LOGIN CREATEROLE')
        admin.execute(f'ALTER DATABASE "{conninfo_to_dict(fresh_db)["dbname"]}" OWNER TO "{name}"')
        # pgcti's roles exist already (other databases of this server have pgcti): since
        # PostgreSQL 16 a CREATEROLE DBA needs ADMIN OPTION on them, as `migrate` says.
        admin.execute(f'GRANT cti_owner, cti_client, cti_ingester TO "{name}" WITH ADMIN OPTION')
    dsn = make_conninfo(fresh_db, user=name)

    def login(role: str) -> str:
        made.append(role)
        return make_conninfo(fresh_db, user=role)

    yield dsn, login
    with psycopg.connect(fresh_db, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS crm, cti, pgcti_migrations CASCADE")
        for role in reversed(made):
            admin.execute(f'DROP OWNED BY "{role}"')
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{conninfo_to_dict(fresh_db)["dbname"]}" OWNER TO postgres')
        for role in reversed(made):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def sim():
    simulator = SimulatorThread()
    yield simulator
    simulator.close()


def test_an_existing_crm_installs_pops_checks_and_rolls_back_clean(crm_dba, sim, tmp_path):
    dba, login = crm_dba
    suffix = os.getpid()
    with psycopg.connect(dba, autocommit=True) as conn:
        conn.execute(guide_block("-- The CRM's own schema, before pgcti."))
        conn.execute(CRM_DATA)
    before = schema_snapshot.dump(dba, owners=True, schemas=("crm",))

    # docs/getting-started.md, then docs/dba-guide.md: migrate, the adapters, the logins.
    run_cli("migrate", "--dsn", dba)
    mycrm = tmp_path / "mycrm"
    mycrm.mkdir()
    (mycrm / "0001_pgcti_adapters.sql").write_text(guide_block("-- mycrm/0001_pgcti_adapters.sql"))
    (mycrm / "0001_pgcti_adapters.rollback.sql").write_text(
        guide_block("-- mycrm/0001_pgcti_adapters.rollback.sql")
    )
    assert "0001_pgcti_adapters" in run_cli("migrate", "--dsn", dba, "--include", str(mycrm)).stdout
    ingester, desk_a, petrova = (
        f"it_ingest_{suffix}",
        f"it_desk_a_{suffix}",
        f"it_petrova_{suffix}",
    )
    with psycopg.connect(dba, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{ingester}" LOGIN IN ROLE cti_ingester')
        conn.execute("INSERT INTO cti.ingester_login (login) VALUES (%s)", [ingester])
        conn.execute(f'CREATE ROLE "{desk_a}" LOGIN IN ROLE cti_client CONNECTION LIMIT 5')
        conn.execute(f'CREATE ROLE "{petrova}" LOGIN IN ROLE cti_client CONNECTION LIMIT 5')
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, 41, NULL), (%s, NULL, 7)",
            [desk_a, petrova],
        )
    doctor = run_cli("doctor", "--dsn", dba)
    assert "FAIL" not in doctor.stdout and "0 failed" in doctor.stdout, doctor.stdout

    # Ingest from the simulator: a known customer (typed with an extension suffix) calls,
    # desk-a's phone 101 answers; an unknown number becomes a lead in the CRM's own table.
    ingest = IngestProcess(login(ingester), sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="the ingester to subscribe")
        sim.send(pbx.inbound_answered(builder(1), "+7 916 111 22 33", LINE, "101"))
        sim.send(pbx.inbound_answered(builder(2), "+7 903 555 00 01", LINE, "102"))
        with psycopg.connect(login(desk_a)) as desk:
            wait_for(
                lambda: len(desk.execute("SELECT * FROM cti.pull_commands_v1()").fetchall()) >= 2,
                what="desk-a's commands",
            )
            cards = desk.execute("SELECT type, payload FROM cti.pull_commands_v1()").fetchall()
        with psycopg.connect(login(petrova), autocommit=True) as employee:
            # Desk-a's two commands may both be of the first call: wait for both rings too.
            def both_rings() -> list | None:
                found = employee.execute("SELECT payload FROM cti.pull_notifications_v1()")
                rows = found.fetchall()
                return rows if len(rows) >= 2 else None

            rings = wait_for(both_rings, what="Petrova's two rings")
    finally:
        assert ingest.stop() == 0
    assert cards[0][0] == "open_card"
    card = cards[0][1]
    assert (card["client_id"], card["client_name"], card["company"], card["manager_surname"]) == (
        5001,
        "Olga Smirnova",
        "Vektor LLC",
        "Petrova",
    )
    assert [(r[0]["number"], r[0].get("client_name")) for r in rings] == [
        ("+79161112233", "Olga Smirnova"),
        ("+79035550001", "Caller +79035550001"),
    ]
    with psycopg.connect(dba) as conn:
        lead = conn.execute(
            "SELECT c.title, c.source FROM crm.customers c JOIN crm.customer_phones p USING (customer_no)"
            " WHERE p.phone_text = '+79035550001'"
        ).fetchall()
    assert lead == [("Caller +79035550001", "pgcti")]

    # Rollback: refused without the adapters' directory, then everything goes.
    refused = run_cli("migrate", "--dsn", dba, "--rollback", "all", check=False)
    assert refused.returncode == 1 and "pass --include DIR" in refused.stderr
    rolled = run_cli("migrate", "--dsn", dba, "--rollback", "all", "--include", str(mycrm)).stdout
    assert "0001_pgcti_adapters" in rolled and "0001_baseline" in rolled
    # The desks' logins keep their group role, ready for a re-install; it says so.
    kept = next(line for line in rolled.splitlines() if "kept role cti_client" in line)
    assert desk_a in kept and petrova in kept and "keep it for a re-install" in kept, rolled
    with psycopg.connect(dba, autocommit=True) as conn:
        conn.execute("DELETE FROM crm.customer_phones WHERE customer_no NOT IN (5001, 5002)")
        conn.execute("DELETE FROM crm.customers WHERE customer_no NOT IN (5001, 5002)")
    assert schema_snapshot.dump(dba, owners=True, schemas=("crm",)) == before
    assert {"cti", "pgcti_migrations"}.isdisjoint(_schemas(dba))
