"""Bad frames are stored with a clear outcome; the calls around them go on."""

from __future__ import annotations

import json

import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.crm_fixture import KNOWN, LINE, builder, commands, insert_frames, outcomes, seed_crm


@pytest.fixture
def conn(rolled_back):
    """These tests need no COMMIT: each runs in a transaction rolled back at its end."""
    return rolled_back


def test_bad_frames_are_stored_with_reasons_and_processing_goes_on(conn):
    seed_crm(conn)
    good = pbx.inbound_answered(builder(), KNOWN, LINE, "101")
    bad = [
        '{"event": "channel_create", "data": {',  # truncated JSON
        "[1, 2, 3]",  # JSON, not an object
        json.dumps({"event": "channel_create", "data": {"uuid": "x1"}}),  # no call_uuid
        json.dumps({"event": "channel_answer"}),  # no data
        json.dumps({"event": "conference_join", "data": {}}),  # unknown event
        json.dumps({"data": {"uuid": "x"}}),  # no event at all
        json.dumps({"event": "channel_bridge", "data": {"call_uuid": "c", "uuids": "ab"}}),
        json.dumps(
            {
                "event": "channel_create",
                "data": {
                    "uuid": "'; DROP TABLE cti.call; --",
                    "call_uuid": "\u202e\u0007evil",
                    "caller_number": "+7 (495) <script>",
                },
            }
        ),
    ]
    insert_frames(conn, good[:3] + bad + good[3:])
    by_body = {}
    for raw_id, status, detail in outcomes(conn):
        body = conn.execute(
            "SELECT coalesce(body, frame::text) FROM cti.raw_event WHERE id = %s", [raw_id]
        ).fetchone()[0]
        by_body[body] = (status, detail)
    assert by_body[bad[0]][0] == "failed" and by_body[bad[0]][1].startswith("not valid JSON")
    assert by_body["[1, 2, 3]"] == ("failed", "frame is JSON but not an object: array")
    statuses = [o[1:] for o in outcomes(conn)][3 : 3 + len(bad)]
    assert statuses[2] == ("failed", 'channel_create frame lacks field "data.call_uuid"')
    assert statuses[3] == ("failed", 'channel_answer frame lacks field "data"')
    assert statuses[4] == ("ignored", 'unknown event type "conference_join"')
    assert statuses[5] == ("failed", 'frame lacks field "event"')
    assert statuses[6][0] == "failed" and "data.uuids" in statuses[6][1]
    assert statuses[7][0] == "processed"  # hostile strings are just data
    # The good call around them was handled in full.
    assert [c[2] for c in commands(conn, "ws")] == ["open_card", "call_ended"]


def test_oversized_frame_is_stored_verbatim_with_the_limit_named(conn):
    conn.execute("UPDATE cti.config SET max_frame_bytes = 1000")
    huge = json.dumps({"event": "channel_create", "data": {"pad": "x" * 5000}})
    insert_frames(conn, [huge])
    body, frame = conn.execute("SELECT body, frame FROM cti.raw_event").fetchone()
    assert body == huge and frame is None
    assert outcomes(conn)[0][1:] == (
        "failed",
        f"frame is {len(huge)} bytes, over the 1000-byte limit (cti.config.max_frame_bytes)",
    )


def test_unknown_source_is_stored_and_failed(conn):
    insert_frames(conn, ['{"event": "x"}'], source="freeswitch")
    assert outcomes(conn)[0][1:] == ("failed", 'no fact function for source "freeswitch"')


def test_an_ami_block_without_an_event_line_is_stored_with_the_reason(conn):
    insert_frames(conn, ["Response: Success\r\nPing: Pong"], source="asterisk")
    assert outcomes(conn)[0][1:] == ("failed", "not an AMI event block (no Event: line)")
