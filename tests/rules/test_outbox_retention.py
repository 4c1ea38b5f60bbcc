"""The outbox keeps what a client has not acknowledged, and lets go of the rest when it is
old (cti.config.outbox_keep, db/logic/60_outbox.sql): on the ingester's tick, bounded,
and never during a rebuild."""

from __future__ import annotations

import itertools
import json

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import run_cli
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm
from tests.support.live import IngestProcess, SimulatorThread, wait_for

TICKS = itertools.count()  # each tick its own frame (the raw log drops a repeated one)


def _tick(conn: psycopg.Connection, days_from_now: float) -> None:
    """The ingester's housekeeping tick, as it inserts it, stamped `days_from_now`."""
    conn.execute(
        "INSERT INTO cti.raw_event (source, received_at, body)"
        " VALUES ('pgcti', now() + make_interval(secs => %s), %s)",
        [days_from_now * 86400, json.dumps({"event": "tick", "n": next(TICKS)})],
    )


def _items(conn: psycopg.Connection, kind: str, target: int) -> list[int]:
    return [
        seq
        for (seq,) in conn.execute(
            "SELECT seq FROM cti.outbox WHERE target_kind = %s AND target_id = %s ORDER BY seq",
            [kind, target],
        )
    ]


def _desk(conn, make_login, crm) -> psycopg.Connection:
    """Desk 101's own login, as a CRM client connects."""
    dsn = make_login("cti_client", "keep_desk")
    login = conninfo_to_dict(dsn)["user"]
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
        [login, crm["ws-101"]],
    )
    return psycopg.connect(dsn, autocommit=True)


def test_old_acknowledged_items_go_and_unacknowledged_ones_stay(conn, make_login):
    crm = seed_crm(conn)
    ws = crm["ws-101"]
    for seed in range(1, 4):  # three answered calls at desk 101: open_card, call_ended each
        insert_frames(conn, pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"))
    assert _items(conn, "ws", ws) == [1, 2, 3, 4, 5, 6]
    with _desk(conn, make_login, crm) as desk:
        desk.execute("SELECT cti.ack_commands_v1(4)")
        _tick(conn, 29)  # not old enough yet (30 days by default)
        assert _items(conn, "ws", ws) == [1, 2, 3, 4, 5, 6]
        _tick(conn, 31)
        # Acknowledged and old: gone. Not acknowledged: kept, however old.
        assert _items(conn, "ws", ws) == [5, 6]
        assert [r[0] for r in desk.execute("SELECT seq FROM cti.pull_commands_v1(NULL, 100)")] == [
            5,
            6,
        ]
        # The stream goes on numbering where it was; the client acks the rest.
        insert_frames(conn, pbx.inbound_answered(builder(4), KNOWN, LINE, "101"))
        assert _items(conn, "ws", ws) == [5, 6, 7, 8]
        desk.execute("SELECT cti.ack_commands_v1(8)")
    _tick(conn, 31)
    # Old as of the tick's own time, as for stale calls: 31 days on, the new ones are too.
    assert _items(conn, "ws", ws) == []
    # The ring notifications of the two employees who hear rings and never acked stay.
    assert (
        _items(conn, "emp", crm["Petrova"]) == _items(conn, "emp", crm["Sidorov"]) == [1, 2, 3, 4]
    )


def test_a_null_keep_keeps_everything_and_a_rebuild_removes_nothing(conn, dsn, make_login):
    crm = seed_crm(conn)
    insert_frames(conn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
    with _desk(conn, make_login, crm) as desk:
        desk.execute("SELECT cti.ack_commands_v1(2)")
    conn.execute("UPDATE cti.config SET outbox_keep = NULL")
    _tick(conn, 400)
    assert _items(conn, "ws", crm["ws-101"]) == [1, 2]
    conn.execute("UPDATE cti.config SET outbox_keep = '30 days'")
    run_cli("rebuild", "--dsn", dsn)  # replays that tick, sending and removing nothing
    assert _items(conn, "ws", crm["ws-101"]) == [1, 2]
    _tick(conn, 31)
    assert _items(conn, "ws", crm["ws-101"]) == []


def test_each_tick_removes_a_bounded_number_per_stream_oldest_first(conn, make_login):
    crm = seed_crm(conn)
    for seed in range(1, 4):
        insert_frames(conn, pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"))
    with _desk(conn, make_login, crm) as desk:
        desk.execute("SELECT cti.ack_commands_v1(6)")
    later = "SELECT cti.prune_outbox(now() + interval '31 days', 4)"
    assert conn.execute(later).fetchone() == (4,)
    assert _items(conn, "ws", crm["ws-101"]) == [5, 6]
    assert conn.execute(later).fetchone() == (2,)
    assert conn.execute(later).fetchone() == (0,)


def test_the_ingesters_own_tick_removes_what_was_acknowledged(conn, dsn, make_login, tmp_path):
    crm = seed_crm(conn)
    conn.execute("UPDATE cti.config SET outbox_keep = '1 second'")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path, "test-key-7f3a9c2e51", "--tick-seconds", "0.5")
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        sim.send(pbx.inbound_answered(builder(2), KNOWN, LINE, "102"))
        wait_for(lambda: _items(conn, "ws", crm["ws-102"]) == [1, 2], what="the call's card")
        assert _items(conn, "ws", crm["ws-102"]) == [1, 2]  # not acknowledged: kept
        with psycopg.connect(dsn, autocommit=True) as dba:  # the desk's ack, as cti.ack_*_v1 do
            dba.execute("SELECT cti.ack('ws', %s, 2)", [crm["ws-102"]])
        wait_for(lambda: _items(conn, "ws", crm["ws-102"]) == [], what="the items removed")
    finally:
        assert ingest.stop() == 0
        sim.close()


def test_doctor_names_streams_nobody_acknowledges_and_how_to_let_them_go(conn, dsn):
    crm = seed_crm(conn)
    conn.execute("UPDATE cti.config SET outbox_keep = '1 second'")
    insert_frames(conn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
    conn.execute("SELECT pg_sleep(1.1)")
    warned = run_cli("doctor", "--dsn", dsn, check=False).stdout
    (line,) = [x for x in warned.splitlines() if " outbox " in x]
    stalled = [f"ws {crm['ws-101']}", f"emp {crm['Petrova']}", f"emp {crm['Sidorov']}"]
    assert (
        line.startswith("warn")
        and f"3 stream(s) with items unacknowledged for longer ({', '.join(stalled)})" in line
    ), line
    # What it says to do, for each: the items go on the next tick, and doctor is content.
    for stream in stalled:
        kind, target = stream.split()
        suggested = f"SELECT cti.ack('{kind}', {target}, 9223372036854775807)"
        if stream == stalled[0]:
            assert suggested in line
        conn.execute(suggested)
    _tick(conn, 0)
    assert conn.execute("SELECT count(*) FROM cti.outbox").fetchone() == (0,)
    fine = run_cli("doctor", "--dsn", dsn, check=False).stdout
    assert "ok    outbox       about" in fine and "kept 00:00:01" in fine, fine
