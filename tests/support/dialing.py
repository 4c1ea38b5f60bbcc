"""Click-to-call in the edge tests: the edges a test started (stopped after it, see
tests/edge/conftest.py), a desk asking to dial, the requests' states, and the link of a
call placed on onlinePBX."""

from __future__ import annotations

import uuid

import psycopg

from tests.support.live import IngestProcess

# `pgcti ingest --dial` processes a test started
STARTED: list[IngestProcess] = []


def dial(desk_dsn: str, number: str) -> str:
    with psycopg.connect(desk_dsn, autocommit=True) as c:
        return str(c.execute("SELECT cti.dial_v1(%s)", [number]).fetchone()[0])


def states(conn) -> dict[str, tuple]:
    return {
        str(r[0]): r[1:]
        for r in conn.execute("SELECT id, state, reason FROM cti.dial_request").fetchall()
    }


def linked_by_number_and_time(conn, crm, desk_dsn: str, rid: str, workstation: str) -> None:
    """onlinePBX names no call in its answer: the desk sees its request answered and linked
    by number and time, and the history has the one call, Ivanov's, placed from that desk."""
    with psycopg.connect(desk_dsn) as c:
        (mine,) = c.execute(
            "SELECT state, call_link, call_outcome FROM cti.dial_requests_v1()"
        ).fetchall()
    assert mine == ("answered", "by number and time", "answered")
    (call,) = conn.execute(
        "SELECT client_id, dial_request_id, dialled_from_workstation FROM cti.call_history_v1"
    ).fetchall()
    assert call == (crm["ivanov"], uuid.UUID(rid), crm[workstation])
