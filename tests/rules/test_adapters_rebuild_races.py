"""Adapter overrides for an existing CRM, rebuild from the raw log, and the registration race."""

from __future__ import annotations

import threading
import time

import psycopg

from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import run_cli
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm

OVERRIDE = """-- Point pgcti's caller lookup at our own CRM's contacts table.
-- depends: 0001_baseline

CREATE SCHEMA mycrm;
CREATE TABLE mycrm.contact (id bigint PRIMARY KEY, fio text, firm text, phone text);
INSERT INTO mycrm.contact VALUES (77, 'Olga Smirnova', 'Vektor LLC', '+74951234567');
GRANT USAGE ON SCHEMA mycrm TO cti_owner;
GRANT SELECT ON mycrm.contact TO cti_owner;

CREATE OR REPLACE FUNCTION cti.crm_lookup(p_e164 text)
RETURNS TABLE (client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT id, fio, firm, NULL::bigint, NULL::text FROM mycrm.contact WHERE phone = p_e164 $$;
"""


def test_an_overridden_lookup_is_used(conn, dsn, tmp_path):
    (tmp_path / "0001_mycrm_lookup.sql").write_text(OVERRIDE)
    (tmp_path / "0001_mycrm_lookup.rollback.sql").write_text("DROP SCHEMA mycrm CASCADE;\n")
    out = run_cli("migrate", "--dsn", dsn, "--include", str(tmp_path)).stdout
    assert "0001_mycrm_lookup" in out
    seed_crm(conn)
    insert_frames(conn, pbx.inbound_answered(builder(), KNOWN, LINE, "101"))
    card = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()[0]
    assert (card["client_id"], card["client_name"], card["company"]) == (
        77,
        "Olga Smirnova",
        "Vektor LLC",
    )
    # The override keeps the catalog rules (pinned search_path, no PUBLIC execute).
    assert (
        conn.execute(
            "SELECT has_function_privilege('public', 'cti.crm_lookup(text)', 'EXECUTE')"
        ).fetchone()[0]
        is False
    )


CALL_COLUMNS = """pbx_call_id, direction, external_number, dialled, client_id, client_match, started_at,
    answered_at, answered_by, holder_extension, ended_at, outcome, hangup_cause, hold_count, ring_notified,
    card_workstation_id, routing_note"""


def _state(conn) -> tuple:
    calls = conn.execute(f"SELECT id, {CALL_COLUMNS} FROM cti.call ORDER BY id").fetchall()
    chain = conn.execute("SELECT * FROM cti.call_transfer ORDER BY call_id, step").fetchall()
    outcome = conn.execute(
        "SELECT raw_event_id, status, detail FROM cti.event_outcome ORDER BY 1"
    ).fetchall()
    return calls, chain, outcome


def test_rebuild_reproduces_the_live_result_and_sends_nothing(conn, dsn):
    seed_crm(conn)
    for seed, frames in enumerate(
        [
            pbx.blind_transfer_chain(builder(1), KNOWN, LINE, ["101", "102", "103"]),
            pbx.inbound_unanswered(builder(2), "89160001122", LINE, ["101"], "ORIGINATOR_CANCEL"),
            pbx.attended_transfer(builder(3), "+79160001122", LINE, "102", "101"),
            ['{"broken'],
            pbx.outbound(builder(4), "103", "84951234567"),
        ]
    ):
        insert_frames(conn, frames if seed != 1 else frames[:-3])  # one call still in progress
    live = _state(conn)
    sent = conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0]
    out = run_cli("rebuild", "--dsn", dsn).stdout
    assert "no commands were sent" in out and "1 failed" in out
    assert _state(conn) == live
    assert conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0] == sent
    assert conn.execute("SELECT count(*) FROM pgcti_refcrm.client WHERE is_lead").fetchone()[0] == 1


def test_rebuild_follows_a_phone_rule_change(conn, dsn):
    seed_crm(conn)
    insert_frames(conn, pbx.inbound_answered(builder(), "4951234567", LINE, "101"))
    assert conn.execute("SELECT external_number FROM cti.call").fetchone()[0] == "+74951234567"
    conn.execute("UPDATE cti.config SET default_country_code = '375'")
    run_cli("rebuild", "--dsn", dsn)
    assert conn.execute("SELECT external_number FROM cti.call").fetchone()[0] == "+3754951234567"


def test_two_calls_from_one_new_number_on_two_connections_register_it_once(dsn):
    first = pbx.inbound_answered(builder(1), "+7 903 777 66 55", LINE, "101")[:1]
    second = pbx.inbound_answered(builder(2), "89037776655", LINE, "102")[:1]
    with psycopg.connect(dsn) as c1, psycopg.connect(dsn) as c2:
        insert_frames(c1, first)  # registers, holding the number's lock until commit
        done = threading.Event()

        def other() -> None:
            insert_frames(c2, second)
            c2.commit()
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        with psycopg.connect(dsn, autocommit=True) as watcher:
            for _ in range(200):  # wait until the second connection is blocked on that lock
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.02)
            assert waiting == 1, "the second registration should wait for the first"
        assert not done.is_set()
        c1.commit()
        thread.join(10)
        assert done.is_set()
        leads = c1.execute(
            "SELECT count(*) FROM pgcti_refcrm.client_phone WHERE e164 = '+79037776655'"
        ).fetchone()[0]
        matches = c1.execute("SELECT client_match FROM cti.call ORDER BY id").fetchall()
    assert leads == 1
    assert matches == [("new",), ("exact",)]
