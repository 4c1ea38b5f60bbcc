"""A batch of frames (one INSERT, as the ingester writes) gives what its frames give one at a time."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ingester.queries import query
from ingester.simulator.traffic import Traffic
from ingester.spool import Frame
from ingester.writer import batch_params
from tests.conftest import _janitor, dsn_for
from tests.crm_fixture import KNOWN, SHARED, insert_frames, seed_crm

BAD_FRAME = json.dumps({"event": "channel_create", "data": {"uuid": "no-call-uuid"}})


@pytest.fixture
def twin_dsn(server_dsn: str, template_db: str, dsn: str):
    """A second migrated database, to feed the same frames a different way."""
    name = conninfo_to_dict(dsn)["dbname"] + "_twin"
    janitor = _janitor(server_dsn, name, template_dbname=template_db)
    janitor.init()
    yield dsn_for(server_dsn, name)
    janitor.drop()


def traffic_frames(calls: int) -> list[str]:
    """Overlapping calls of every scenario, in the order the PBX sends them, plus a bad frame."""
    traffic = Traffic(
        seed=11, known_numbers=[KNOWN, SHARED], extensions=["101", "102", "103", "104"], scale=0.01
    )
    frames = [json.dumps(f) for _, f in traffic.schedule(time.time() - 600, 50, calls)]
    frames.insert(len(frames) // 2, BAD_FRAME)
    return frames


def insert_as_batches(conn: psycopg.Connection, frames: list[str], size: int) -> None:
    now = datetime.now(UTC)
    for start in range(0, len(frames), size):
        batch = [Frame("onlinepbx3", now, body) for body in frames[start : start + size]]
        conn.execute(query("insert_raw_events"), batch_params(batch))


def observed(conn: psycopg.Connection) -> dict:
    """Everything a user can see, keyed by PBX ids rather than our surrogate ids."""
    return {
        "outcomes": conn.execute(
            "SELECT coalesce(r.frame::text, r.body), o.status, o.detail"
            " FROM cti.raw_event r JOIN cti.event_outcome o ON o.raw_event_id = r.id ORDER BY r.id"
        ).fetchall(),
        "commands": conn.execute(
            "SELECT o.target_kind, o.target_id, o.seq, o.type, c.pbx_call_id,"
            "       o.payload - 'call_id' - 'client_id'"
            " FROM cti.outbox o JOIN cti.call c ON c.id = o.call_id ORDER BY 1, 2, 3"
        ).fetchall(),
        "history": conn.execute(
            "SELECT pbx_call_id, direction, external_number, client_match, answered_by, outcome,"
            "       extension_chain, started_at, answered_at, ended_at"
            " FROM cti.call_history_v1 ORDER BY pbx_call_id"
        ).fetchall(),
    }


def test_a_batch_sends_what_its_frames_send_one_at_a_time(conn, twin_dsn):
    frames = traffic_frames(calls=40)
    seed_crm(conn)
    insert_frames(conn, frames)  # one statement per frame
    with psycopg.connect(twin_dsn, autocommit=True) as twin:
        seed_crm(twin)
        insert_as_batches(twin, frames, size=60)  # the batch holding the bad frame falls back
        batched = observed(twin)
    one_by_one = observed(conn)

    assert len(one_by_one["commands"]) > 100, "the mix should send plenty of commands"
    assert batched["outcomes"] == one_by_one["outcomes"]
    assert batched["commands"] == one_by_one["commands"]
    assert batched["history"] == one_by_one["history"]
    failed = [o for o in batched["outcomes"] if o[1] == "failed"]
    assert len(failed) == 1 and "call_uuid" in failed[0][2]


def test_a_lock_conflict_fails_the_insert_so_the_ingester_retries_it(conn, dsn):
    """Waiting on another transaction is not the frame's fault: no 'failed' outcome is
    recorded; the INSERT itself fails (nothing stored) and the ingester spools and retries."""
    seed_crm(conn)
    first = json.dumps(
        {
            "event": "channel_create",
            "data": {
                "uuid": "leg-1",
                "call_uuid": "call-1",
                "caller_number": KNOWN,
                "destination_number": "101",
            },
        }
    )
    insert_frames(conn, [first])
    answer = json.dumps(
        {"event": "channel_answer", "data": {"uuid": "leg-1", "call_uuid": "call-1"}}
    )
    with psycopg.connect(dsn) as holder:  # another transaction holds the call row
        holder.execute("SELECT * FROM cti.call WHERE pbx_call_id = 'call-1' FOR UPDATE")
        conn.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            insert_as_batches(conn, [answer], size=10)
        holder.rollback()
    conn.execute("RESET lock_timeout")
    assert conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0] == 1
    insert_as_batches(conn, [answer], size=10)  # the retry
    statuses = conn.execute("SELECT status FROM cti.event_outcome ORDER BY raw_event_id").fetchall()
    assert statuses == [("processed",), ("processed",)]
