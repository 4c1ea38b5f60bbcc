"""onlinePBX API 2.0 (no call ids, no transfer event) at the SQL boundary: calls correlated
through legs, bridges and numbers (the same calls as 3.0: tests/rules/test_same_calls_every_pbx.py)."""

from __future__ import annotations

import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx2_calls import from_onlinepbx3
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    builder,
    commands,
    insert_frames,
    outcomes,
    seed_crm,
)

# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


def test_two_concurrent_2_0_calls_from_different_numbers_stay_apart(conn):
    crm = seed_crm(conn)
    a = from_onlinepbx3(pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))
    b = from_onlinepbx3(pbx.inbound_answered(builder(2), "+79030001122", LINE, "102"))
    insert_frames(
        conn,
        [f for pair in zip(a, b, strict=False) for f in pair] + a[len(b) :] + b[len(a) :],
        source="onlinepbx2",
    )
    rows = conn.execute(
        "SELECT external_number, answered_by, outcome FROM cti.call ORDER BY id"
    ).fetchall()
    assert rows == [("+74951234567", "101", "answered"), ("+79030001122", "102", "answered")]
    assert sorted((c[1], c[2]) for c in commands(conn, "ws")) == sorted(
        [
            (crm["ws-101"], "open_card"),
            (crm["ws-101"], "call_ended"),
            (crm["ws-102"], "open_card"),
            (crm["ws-102"], "call_ended"),
        ]
    )


def test_2_0_answer_before_create_still_joins_the_customer_call(conn):
    crm = seed_crm(conn)
    events = from_onlinepbx3(pbx.inbound_answered(builder(3), KNOWN, LINE, "101"))
    answers = [
        e
        for e in events
        if e["name"] in ("channel_answer", "blf")
        and e["args"][0].get("status", "answered") == "answered"
    ]
    rest = [e for e in events if e not in answers]
    insert_frames(conn, answers + rest, source="onlinepbx2")
    assert conn.execute(
        "SELECT count(*), min(answered_by), min(outcome) FROM cti.call"
    ).fetchone() == (1, "101", "answered")
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "call_ended"),
    ]


def test_2_0_frame_missing_a_field_fails_naming_it(conn):
    insert_frames(
        conn,
        [
            '{"name": "channel_bridge", "args": [{"aleg_uuid": "a"}]}',
            '{"name": "blf"}',
            '{"args": []}',
            '{"name": "registration", "args": [{}]}',
        ],
        source="onlinepbx2",
    )
    assert [o[1:] for o in outcomes(conn)] == [
        ("failed", 'channel_bridge frame lacks field "args[0].bleg_uuid"'),
        ("failed", 'blf frame lacks field "args[0]"'),
        ("failed", 'frame lacks field "name"'),
        (
            "ignored",
            "presence: registration with no extension and state pgcti reads (fields: none)",
        ),
    ]
