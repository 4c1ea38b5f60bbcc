"""onlinePBX API 2.0 end to end: socket.io 0.9 handshake and heartbeats over real sockets."""

from __future__ import annotations

import time

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx2_calls import from_onlinepbx3
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for

DOMAIN = "demo.onpbx.ru"


@pytest.fixture
def sim2():
    simulator = SimulatorThread(protocol="onlinepbx2", heartbeat=0.3)
    yield simulator
    simulator.close()


def _ingest(dsn, sim, tmp_path, key=KEY) -> IngestProcess:
    return IngestProcess(dsn, sim.url, tmp_path, key, "--pbx", "onlinepbx2", "--domain", DOMAIN)


def _ws_commands(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT target_id, type FROM cti.outbox WHERE target_kind = 'ws'"
            " ORDER BY created_at, seq"
        ).fetchall()


def test_2_0_calls_arrive_as_commands_and_heartbeats_keep_the_session(conn, dsn, sim2, tmp_path):
    crm = seed_crm(conn)
    ingest = _ingest(dsn, sim2, tmp_path)
    try:
        wait_for(lambda: sim2.server.listeners() == 1, what="2.0 subscription")
        time.sleep(
            1.5
        )  # five heartbeats: a client that did not answer them would have been cut off
        assert sim2.server.subscriptions == 1
        events = from_onlinepbx3(pbx.blind_transfer_chain(builder(1), KNOWN, LINE, ["101", "102"]))
        assert sim2.send(events) == len(events)
        wait_for(lambda: len(_ws_commands(dsn)) == 4, what="card commands")
    finally:
        assert ingest.stop() == 0
    assert _ws_commands(dsn) == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "close_card"),
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "call_ended"),
    ]
    assert KEY not in ingest.log


def test_2_0_wrong_key_is_refused_with_a_clear_error(dsn, sim2, tmp_path):
    ingest = _ingest(dsn, sim2, tmp_path, "not-the-key-42")
    assert ingest.proc.wait(20) == 2
    assert "refused the handshake with HTTP 401: check the API key and domain" in ingest.log
    assert "not-the-key-42" not in ingest.log


def test_2_0_dropped_connection_handshakes_again_and_resubscribes(conn, dsn, sim2, tmp_path):
    seed_crm(conn)
    ingest = _ingest(dsn, sim2, tmp_path)
    try:
        wait_for(lambda: sim2.server.listeners() == 1, what="first subscription")
        sim2.drop()
        wait_for(
            lambda: sim2.server.subscriptions == 2 and sim2.server.listeners() == 1,
            what="resubscription",
        )
        events = from_onlinepbx3(pbx.inbound_answered(builder(2), KNOWN, LINE, "103"))
        sim2.send(events)
        wait_for(lambda: len(_ws_commands(dsn)) == 2, what="commands after the reconnect")
    finally:
        assert ingest.stop() == 0
    assert "PBX connection dropped" in ingest.log


def test_2_0_needs_a_domain(dsn, tmp_path):
    result = IngestProcess(dsn, "http://127.0.0.1:9", tmp_path, KEY, "--pbx", "onlinepbx2")
    assert result.proc.wait(20) == 2
    assert "onlinepbx2 needs the PBX domain" in result.log


def test_2_0_a_frame_over_the_limit_is_stored_bounded_on_the_same_session(
    conn, dsn, sim2, tmp_path
):
    """A 17 MiB event packet over the 16 MiB limit: the session is kept (no new handshake),
    the packet is stored as its size, hash and first KB, and the call after it completes."""
    crm = seed_crm(conn)
    ingest = _ingest(dsn, sim2, tmp_path)
    try:
        wait_for(lambda: sim2.server.listeners() == 1, what="2.0 subscription")
        events = from_onlinepbx3(pbx.inbound_answered(builder(3), KNOWN, LINE, "101"))
        assert sim2.send(['{"name": "big", "args": ["' + "y" * (17 * 2**20) + '"]}', *events])
        wait_for(lambda: len(_ws_commands(dsn)) == 2, what="the call after the big frame")
        with psycopg.connect(dsn) as db:
            (body,) = db.execute(
                "SELECT body FROM cti.raw_event WHERE source = 'onlinepbx2' AND body LIKE %s",
                ["pgcti ingester: this frame was over the 16 MiB transport limit%"],
            ).fetchone()
    finally:
        assert ingest.stop() == 0
    assert "bytes, sha256 " in body and 'it began: 5:::{"name": "big"' in body
    assert sim2.server.subscriptions == 1, "the same session"
    assert _ws_commands(dsn)[0] == (crm["ws-101"], "open_card")
