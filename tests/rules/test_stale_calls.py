"""A call whose end was lost (sent while the PBX connection was down) is ended by the ingester's
housekeeping tick: its card gets `call_ended`, its outcome is kept, and a rebuild agrees."""

from __future__ import annotations

import json

import psycopg

from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import run_cli
from tests.support.crm_fixture import KNOWN, LINE, builder, commands, insert_frames, seed_crm
from tests.support.live import IngestProcess, SimulatorThread, wait_for


def _tick(conn, hours_from_now: float) -> None:
    conn.execute(
        "INSERT INTO cti.raw_event (source, received_at, body)"
        " VALUES ('pgcti', now() + make_interval(secs => %s), %s)",
        [hours_from_now * 3600, json.dumps({"event": "tick", "n": hours_from_now})],
    )


def test_a_tick_ends_calls_silent_for_too_long(conn, dsn):
    crm = seed_crm(conn)
    lost_end = pbx.inbound_answered(builder(1), KNOWN, LINE, "101")[
        :4
    ]  # answered; hangups never arrived
    insert_frames(conn, lost_end)
    _tick(conn, 1)  # not yet stale (default: 2 hours)
    assert conn.execute("SELECT ended_at FROM cti.call").fetchone() == (None,)
    _tick(conn, 3)
    outcome, cause = conn.execute("SELECT outcome, hangup_cause FROM cti.call").fetchone()
    assert (outcome, cause) == ("answered", "PGCTI_STALE")
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "call_ended"),
    ]
    detail = conn.execute(
        "SELECT detail FROM cti.event_outcome ORDER BY raw_event_id DESC LIMIT 1"
    ).fetchone()[0]
    assert detail == "tick: 1 stale call(s) ended"
    state = conn.execute("SELECT outcome, ended_at, card_workstation_id FROM cti.call").fetchall()
    run_cli("rebuild", "--dsn", dsn)
    assert (
        conn.execute("SELECT outcome, ended_at, card_workstation_id FROM cti.call").fetchall()
        == state
    )


def test_the_ingester_ticks(conn, dsn, tmp_path):
    seed_crm(conn)
    conn.execute("UPDATE cti.config SET stale_call_after = '1 second'")
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path, "test-key-7f3a9c2e51", "--tick-seconds", "0.5")
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        sim.send(pbx.inbound_answered(builder(2), KNOWN, LINE, "102")[:4])

        def ended() -> list:
            with psycopg.connect(dsn) as c:
                return c.execute(
                    "SELECT type FROM cti.outbox WHERE target_kind = 'ws' ORDER BY seq"
                ).fetchall()

        wait_for(
            lambda: ended() == [("open_card",), ("call_ended",)],
            what="the stale call ended by a tick",
        )
    finally:
        assert ingest.stop() == 0
        sim.close()
