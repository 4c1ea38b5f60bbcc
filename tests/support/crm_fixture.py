"""A small reference CRM and helpers to feed raw frames and read what came out."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingester.frame import Frame
from ingester.pipeline.writer import batch_params
from ingester.queries import query
from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx3_calls import CallBuilder

LINE = "74950001122"
KNOWN = "+7 (495) 123-45-67"  # Ivanov at Romashka, manager Petrova
SHARED = "8 812 555 00 00"  # two clients share this number


def seed_crm(conn: psycopg.Connection) -> dict[str, int]:
    """Employees 101-104 (104 has no workstation), three workstations, three clients."""
    ids: dict[str, int] = {}
    for surname, ext, notify in [
        ("Petrova", "101", True),
        ("Sidorov", "102", True),
        ("Kuznetsova", "103", False),
        ("Orlov", "104", False),
    ]:
        ids[surname] = conn.execute(
            "INSERT INTO pgcti_refcrm.employee (surname, name, extension, receives_call_notifications)"
            " VALUES (%s, 'X', %s, %s) RETURNING id",
            [surname, ext, notify],
        ).fetchone()[0]
    for name, ext in [("ws-101", "101"), ("ws-102", "102"), ("ws-103", "103")]:
        ids[name] = conn.execute(
            "INSERT INTO pgcti_refcrm.workstation (name, extension) VALUES (%s, %s) RETURNING id",
            [name, ext],
        ).fetchone()[0]
    company = conn.execute(
        "INSERT INTO pgcti_refcrm.company (name) VALUES ('Romashka') RETURNING id"
    ).fetchone()[0]
    for key, name, phone in [
        ("ivanov", "Ivan Ivanov", KNOWN),
        ("shared_a", "Anna A", SHARED),
        ("shared_b", "Boris B", "+78125550000"),
    ]:
        ids[key] = conn.execute(
            "INSERT INTO pgcti_refcrm.client (name, company_id, manager_id) VALUES (%s, %s, %s)"
            " RETURNING id",
            [name, company, ids["Petrova"]],
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (%s, %s)",
            [ids[key], phone],
        )
    return ids


def builder(seed: int = 1) -> CallBuilder:
    # PBX stamps near the real clock, as live frames have them: ten minutes back, but never
    # before today's midnight, so that what is "today" for the views stays today.
    midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    return CallBuilder(random.Random(seed), clock=max(time.time() - 600, midnight.timestamp() + 1))


def insert_frames(
    conn: psycopg.Connection, frames: Iterable[Any], source: str = "onlinepbx3"
) -> None:
    """Insert frames the way the ingester does: body text, ON CONFLICT DO NOTHING."""
    for frame in frames:
        body = frame if isinstance(frame, str) else json.dumps(frame)
        conn.execute(
            "INSERT INTO cti.raw_event (source, body) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [source, body],
        )


def insert_batch(
    conn: psycopg.Connection, frames: Iterable[Any], source: str = "onlinepbx3"
) -> None:
    """Insert frames as the ingester does under load: one statement for the whole batch."""
    now = datetime.now(UTC)
    batch = [Frame(source, now, f if isinstance(f, str) else json.dumps(f)) for f in frames]
    conn.execute(query("insert_raw_events"), batch_params(batch))


def commands(conn: psycopg.Connection, kind: str | None = None) -> list[tuple]:
    """(target_kind, target_id, type, call_id) in the order they were sent."""
    return conn.execute(
        "SELECT target_kind, target_id, type, call_id FROM cti.outbox"
        " WHERE %(kind)s::text IS NULL OR target_kind = %(kind)s ORDER BY created_at, target_kind, target_id, seq",
        {"kind": kind},
    ).fetchall()


def call_row(conn: psycopg.Connection, pbx_call_id: str) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM cti.call_history_v1 WHERE pbx_call_id = %s", [pbx_call_id])
    row = cur.fetchone()
    assert row is not None, f"no call {pbx_call_id}"
    return dict(zip([c.name for c in cur.description], row, strict=True))


def outcomes(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT r.id, o.status, o.detail FROM cti.raw_event r"
        " LEFT JOIN cti.event_outcome o ON o.raw_event_id = r.id ORDER BY r.id"
    ).fetchall()


def channel(conn: psycopg.Connection, kind: str, target_id: int) -> str:
    """A stream's LISTEN channel as the database names it (clients get theirs from whoami_v1)."""
    return conn.execute("SELECT cti.channel_name(%s, %s)", [kind, target_id]).fetchone()[0]


# The calls every PBX source is checked against: the same call told by another PBX gives
# the same call facts and the same commands as its onlinePBX 3.0 twin.
TWIN_SCENARIOS = {
    "answered": lambda b: pbx.inbound_answered(b, KNOWN, LINE, "102"),
    "unknown_caller": lambda b: pbx.inbound_answered(b, "+79035550000", LINE, "101"),
    "missed": lambda b: pbx.inbound_unanswered(b, KNOWN, LINE, ["101", "102"], "NO_ANSWER"),
    "abandoned": lambda b: pbx.inbound_unanswered(b, KNOWN, LINE, ["101"], "ORIGINATOR_CANCEL"),
    "busy": lambda b: pbx.inbound_unanswered(b, KNOWN, LINE, ["103"], "USER_BUSY"),
    "ring_all": lambda b: pbx.ring_all(b, KNOWN, LINE, ["101", "102", "103"], winner="102"),
    "blind_chain": lambda b: pbx.blind_transfer_chain(b, KNOWN, LINE, ["101", "102", "103"]),
    "attended": lambda b: pbx.attended_transfer(b, KNOWN, LINE, "101", "102"),
    "hold": lambda b: pbx.inbound_with_hold(b, KNOWN, LINE, "101"),
    "outbound": lambda b: pbx.outbound(b, "102", "84951234567"),
    "outbound_unanswered": lambda b: pbx.outbound(b, "102", "84951234567", answered=False),
    "internal": lambda b: pbx.internal(b, "101", "102"),
}

TWIN_CALL_FACTS = """SELECT direction, external_number, client_match, answered_by, holder_extension, outcome,
                            hold_count, (SELECT array_agg(to_extension ORDER BY step) FROM cti.call_transfer t
                                          WHERE t.call_id = c.id)
                       FROM cti.call c WHERE source = %s ORDER BY id"""


def twin_of_3_0(conn: psycopg.Connection, frames3: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """What the 3.0 twin gives (call facts, commands), undone afterwards (no lead it registered stays)."""
    with conn.transaction(force_rollback=True):
        insert_frames(conn, frames3, source="onlinepbx3")
        return conn.execute(TWIN_CALL_FACTS, ["onlinepbx3"]).fetchall(), commands_by_type(conn)


def commands_by_type(conn: psycopg.Connection) -> list[tuple]:
    return [(kind, target, type_) for kind, target, type_, _ in commands(conn)]
