"""Processing keeps looking rows up by key as its tables grow.

A session plans each statement of the processing functions once. On a fresh install the
tables that grow with the history (callback tasks and their parties, transfers, registered
numbers, Asterisk's bridge stays, API 2.0's legs and bridges) are empty then, and a plan
that reads a small table whole stays cached while it grows: every lookup slower than the
one before (docs/performance.md). Here the plans are
made on tables analyzed while empty, the tables are grown without a new ANALYZE, and the
plans the same session then runs are read back through auto_explain."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import psycopg
import pytest

from ingester.simulator import onlinepbx2_calls
from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import from_onlinepbx3
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_batch, insert_frames, seed_crm

GROWING = ["callback_task", "callback_party_key", "call_transfer", "registered_number"]
UNKNOWN = "+7 916 000-11-22"


def calls(seed: int) -> list[list[dict]]:
    """A missed call and then an answered one from a client (a task made, then closed), a
    transfer chain, and an unknown caller (registered)."""
    return [
        pbx.inbound_unanswered(builder(seed), KNOWN, LINE, ["101"], "NO_ANSWER"),
        pbx.inbound_answered(builder(seed + 1), KNOWN, LINE, "101"),
        pbx.blind_transfer_chain(builder(seed + 2), KNOWN, LINE, ["101", "102", "103"]),
        pbx.inbound_answered(
            builder(seed + 3), UNKNOWN.replace("1-22", f"{seed % 10}-22"), LINE, "102"
        ),
    ]


def grow(conn: psycopg.Connection, rows: int) -> None:
    """What months of traffic leave behind, written directly, with no ANALYZE after it."""
    conn.execute(
        "INSERT INTO cti.call (source, pbx_call_id) SELECT 'onlinepbx3', 'grown-' || g"
        " FROM generate_series(1, %s) g",
        [rows],
    )
    grown = "SELECT id, row_number() OVER (ORDER BY id) AS n FROM cti.call WHERE pbx_call_id LIKE 'grown-%%'"
    conn.execute(
        f"INSERT INTO cti.call_transfer SELECT id, 1, '101', '102', now() FROM ({grown}) c"
    )
    conn.execute(
        "INSERT INTO cti.callback_task (party, e164, first_call_id, last_call_id, created_at, due_at,"
        " closed_at, closed_how)"
        f" SELECT 'number:+7999' || n, '+7999' || n, id, id, now(), now(), now(), 'inbound_answered'"
        f" FROM ({grown}) c"
    )
    conn.execute(
        "INSERT INTO cti.callback_party_key SELECT 'number:+7999' || g, g FROM generate_series(1, %s) g",
        [rows],
    )
    conn.execute(
        f"INSERT INTO cti.registered_number (e164, client_id, call_id) SELECT '+7999' || n, 0, id FROM ({grown}) c"
    )


def load_auto_explain(conn: psycopg.Connection) -> None:
    try:
        conn.execute("LOAD 'auto_explain'")
    except psycopg.Error as exc:
        pytest.skip(f"auto_explain cannot be loaded on this server ({exc}); it reads the plans")


@contextlib.contextmanager
def explained(conn: psycopg.Connection, analyze: bool = False) -> Iterator[list[str]]:
    """The plans of every statement run inside, nested ones too, as auto_explain gives them
    (with ANALYZE: the rows each node read, timing off)."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    settings = ["log_min_duration = 0", "log_nested_statements = on", "log_level = notice"]
    settings += ["log_analyze = on", "log_timing = off"] if analyze else []
    for setting in settings:
        conn.execute(f"SET auto_explain.{setting}")
    yield plans
    conn.execute("SET auto_explain.log_min_duration = -1")


def test_lookups_stay_keyed_when_tables_grow_after_the_plans_were_made(conn):
    load_auto_explain(conn)
    seed_crm(conn)
    for table in GROWING:  # only the plans under test change this test's outcome
        conn.execute(f"ALTER TABLE cti.{table} SET (autovacuum_enabled = false)")
    conn.execute("ANALYZE")  # while they are empty: the worst case
    for frames in calls(seed=10):  # the session plans its statements now
        insert_batch(conn, frames)
    grow(conn, 20_000)

    with explained(conn) as plans:
        for frames in calls(seed=20):  # the same kinds of calls, in rounds and frame by frame
            insert_batch(conn, frames[: len(frames) // 2])
            insert_frames(conn, frames[len(frames) // 2 :])
    text = "\n".join(plans)
    assert "callback_party_key" in text and "call_transfer" in text, "the statements ran"
    assert "registered_number" in text
    scans = sorted(set(re.findall(rf"Seq Scan on ({'|'.join(GROWING)})\b", text)))
    assert scans == [], f"read whole as they grew: {scans}"
    # And what they did is right: the client's task was made and closed again, the
    # transfer chain recorded, the unknown caller registered.
    assert conn.execute(
        "SELECT count(*) FILTER (WHERE closed_at IS NULL), count(*) FROM cti.callback_task"
        " WHERE party NOT LIKE 'number:+7999%%'"
    ).fetchone() == (0, 2)
    assert conn.execute(
        "SELECT count(*) FROM cti.call_transfer t JOIN cti.call c ON c.id = t.call_id"
        " WHERE c.pbx_call_id NOT LIKE 'grown-%%'"
    ).fetchone() == (4,)


def ami_calls(seed: int) -> list[str]:
    """Calls whose AMI blocks put channels in bridges: answered, transferred, rung to all."""
    return [
        block
        for frames in (
            pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"),
            pbx.blind_transfer_chain(builder(seed + 1), KNOWN, LINE, ["101", "102"]),
            pbx.ring_all(builder(seed + 2), KNOWN, LINE, ["101", "102", "103"], "103"),
        )
        for block in from_onlinepbx3(frames)
    ]


def rows_read(plans: str, table: str) -> list[int]:
    """Per plan node on ``table``: the rows it returned and the rows its filter removed, each
    per loop as EXPLAIN ANALYZE reports them (through auto_explain)."""
    counts: list[int] = []
    lines = plans.splitlines()
    for i, line in enumerate(lines):
        if f" on {table} " not in line:
            continue
        counts += [round(float(n)) for n in re.findall(r"actual rows=([\d.]+)", line)]
        for detail in lines[i + 1 :]:
            if "->" in detail:
                break
            removed = re.findall(r"Rows Removed by (?:Filter|Join Filter): ([\d.]+)", detail)
            counts += [round(float(n)) for n in removed]
    return counts


def test_asterisk_bridges_stay_keyed_when_they_grow_after_the_plans_were_made(conn):
    """Who talked to whom on Asterisk comes from the stays in bridges, a table that grows with
    every call. Its lookups were planned as a walk of the whole table for each bridge: after
    2,000 blocks a call took 9 ms in it, 7.5 times the rest of its processing."""
    load_auto_explain(conn)
    seed_crm(conn)
    conn.execute("ALTER TABLE cti.ami_bridge_member SET (autovacuum_enabled = false)")
    conn.execute("ANALYZE")  # while it is empty: the worst case
    insert_frames(conn, ami_calls(seed=10), source="asterisk")  # the session plans now
    conn.execute(
        "INSERT INTO cti.ami_bridge_member SELECT 'asterisk', 'grown-bridge-' || g / 2,"
        " 'grown-' || g, g % 10 = 0, now(), g, now(), g FROM generate_series(1, 20000) g"
    )

    with explained(conn, analyze=True) as plans:
        insert_frames(conn, ami_calls(seed=20), source="asterisk")
    text = "\n".join(plans)
    read = rows_read(text, "ami_bridge_member")
    assert read, "the bridge lookups ran"
    assert max(read) < 100, f"rows read per lookup as the table grew: {sorted(read)[-5:]}"
    bridged = "SELECT count(*) FROM cti.call_bridge b JOIN cti.call c ON c.id = b.call_id"
    assert conn.execute(bridged).fetchone()[0] >= 6, "and the calls were paired right"


def test_onlinepbx2_correlation_stays_keyed_when_history_grows(conn):
    """API 2.0 names no call: a new leg is matched through the bridges it was in and the open
    legs of the same caller. Both lookups read every bridge and every leg ever stored (the
    pipeline went from 1,520 to 690 frames/s over 30,000 frames), and then every leg under
    way of any caller."""
    load_auto_explain(conn)
    seed_crm(conn)
    for table in ("call_leg", "call_bridge", "call"):
        conn.execute(f"ALTER TABLE cti.{table} SET (autovacuum_enabled = false)")
    conn.execute("ANALYZE")  # while they are empty: the worst case

    def calls(seed: int) -> list[str]:
        return [
            json.dumps(event)
            for frames in (
                pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"),
                pbx.blind_transfer_chain(builder(seed + 1), KNOWN, LINE, ["101", "102"]),
                pbx.ring_all(builder(seed + 2), KNOWN, LINE, ["101", "102", "103"], "103"),
            )
            for event in onlinepbx2_calls.from_onlinepbx3(frames)
        ]

    insert_frames(conn, calls(seed=10), source="onlinepbx2")  # the session plans now
    # Months of ended calls: a leg each side, bridged.
    conn.execute(
        "INSERT INTO cti.call (source, pbx_call_id, ended_at) SELECT 'onlinepbx2', 'grown-' || g, now()"
        " FROM generate_series(1, 20000) g"
    )
    conn.execute(
        "INSERT INTO cti.call_leg (source, leg_uuid, call_id, caller, destination, created_at, ended_at)"
        " SELECT 'onlinepbx2', 'grown-leg-' || c.id || side, c.id, '+74951234567', '101',"
        " now() - interval '1 minute', now()"
        " FROM cti.call c, (VALUES ('a'), ('b')) s(side) WHERE c.pbx_call_id LIKE 'grown-%'"
    )
    conn.execute(
        "INSERT INTO cti.call_bridge SELECT id, 'grown-leg-' || id || 'a', 'grown-leg-' || id || 'b', now()"
        " FROM cti.call WHERE pbx_call_id LIKE 'grown-%'"
    )
    # And calls of other callers under way, newer than these frames: an open leg each. A
    # lookup by time alone read every one of them for each new leg.
    conn.execute(
        "INSERT INTO cti.call (source, pbx_call_id) SELECT 'onlinepbx2', 'open-' || g"
        " FROM generate_series(1, 2000) g"
    )
    conn.execute(
        "INSERT INTO cti.call_leg (source, leg_uuid, call_id, caller, destination, created_at)"
        " SELECT 'onlinepbx2', 'open-leg-' || c.id, c.id, '+7499' || lpad(c.id::text, 7, '0'), '101',"
        " now() - interval '9 minutes 30 seconds'"
        " FROM cti.call c WHERE c.pbx_call_id LIKE 'open-%'"
    )

    with explained(conn, analyze=True) as plans:
        insert_frames(conn, calls(seed=20), source="onlinepbx2")
    text = "\n".join(plans)
    for table in ("call_leg", "call_bridge"):
        read = rows_read(text, table)
        assert read, f"the lookups in {table} ran"
        assert max(read) < 100, f"rows read per lookup in {table}: {sorted(read)[-5:]}"
    answered = (
        "SELECT count(*) FROM cti.call WHERE pbx_call_id NOT LIKE 'grown-%'"
        " AND pbx_call_id NOT LIKE 'open-%' AND answered_by IS NOT NULL"
    )
    assert conn.execute(answered).fetchone()[0] == 6, "and each call was put together right"


def test_processing_turns_jit_off_with_sequential_scans(conn):
    """Up to PostgreSQL 17 a disabled scan that cannot be avoided (cti.config's one row) is
    priced at 10^10, over jit_above_cost: with LLVM, every statement reading it was compiled,
    and an ingester's batch took seconds on PostgreSQL 15 (`make test-pg15` caught it). The
    embedded server has no JIT, so here the settings themselves are checked."""
    settings = dict(
        conn.execute(
            "SELECT p.proname, p.proconfig FROM pg_proc p"
            " WHERE p.pronamespace = 'cti'::regnamespace AND p.proname IN ('tg_raw_event__process', 'rebuild')"
        ).fetchall()
    )
    for name in ("tg_raw_event__process", "rebuild"):
        assert {"enable_seqscan=off", "jit=off"} <= set(settings[name]), name
