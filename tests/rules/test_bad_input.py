"""Bad frames are stored with a clear outcome; the calls around them go on."""

from __future__ import annotations

import json

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    builder,
    commands,
    insert_batch,
    insert_frames,
    outcomes,
    seed_crm,
)

# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


# Two ways into the raw log: the ingester's cti.ingest_frames_v1() (parsed in its INSERT's
# query, a batch at a time) and anyone else's plain INSERT (parsed by the row trigger).
@pytest.fixture(params=["ingester's batch", "plain INSERT"])
def insert(request):
    return insert_batch if request.param == "ingester's batch" else insert_frames


def test_bad_frames_are_stored_with_reasons_and_processing_goes_on(conn, insert):
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
    insert(conn, good[:3] + bad + good[3:])
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


def test_oversized_frame_is_stored_verbatim_with_the_limit_named(conn, insert):
    conn.execute("UPDATE cti.config SET max_frame_bytes = 1000")
    huge = json.dumps({"event": "channel_create", "data": {"pad": "x" * 5000}})
    insert(conn, [huge])
    body, frame = conn.execute("SELECT body, frame FROM cti.raw_event").fetchone()
    assert body == huge and frame is None
    assert outcomes(conn)[0][1:] == (
        "failed",
        f"frame is {len(huge)} bytes, over the 1000-byte limit (cti.config.max_frame_bytes)",
    )


def test_unknown_source_is_stored_and_failed(conn, insert):
    insert(conn, ['{"event": "x"}'], source="freeswitch")
    assert outcomes(conn)[0][1:] == ("failed", 'no fact function for source "freeswitch"')


def test_an_ami_block_without_an_event_line_is_stored_with_the_reason(conn, insert):
    insert(conn, ["Response: Success\r\nPing: Pong"], source="asterisk")
    assert outcomes(conn)[0][1:] == ("failed", "not an AMI event block (no Event: line)")


def test_both_ways_in_store_the_same_row_and_know_each_others_replays(conn):
    """The ingester's batch and a plain INSERT parse and key a frame alike: a frame stored
    one way is a duplicate when it comes again the other way."""
    frames = {
        "onlinepbx3": [
            json.dumps({"event": "channel_create", "data": {"uuid": "u", "call_uuid": "c"}}),
            '{"data": {"call_uuid": "c"},   "event": "call_end"}',  # spacing and key order
            '{"event": "x", "data": {"s": "\\u0000"}}',  # an escape jsonb cannot hold
            '{"event": ',
            "[]",
            "",
        ],
        "asterisk": [
            "Event: Newchannel\r\nChannel: PJSIP/101-00000001\r\nLinkedid: 1.1",
            "Event: Hangup\r\nTimestamp: 1700000000.000001\r\nLinkedid: 1.1",
            "Response: Success",
        ],
    }
    stored = {}
    for way, insert_way in [("batch", insert_batch), ("plain", insert_frames)]:
        with conn.transaction(force_rollback=True):
            for source, bodies in frames.items():
                insert_way(conn, bodies, source=source)
            stored[way] = conn.execute(
                "SELECT source, body, frame, parse_error FROM cti.raw_event ORDER BY id"
            ).fetchall()
            keys = conn.execute("SELECT dedup_key FROM cti.raw_event ORDER BY id").fetchall()
            assert all(len(key) == 32 for (key,) in keys), "a SHA-256, as bytes"
            # The other way's replay of the frames with a key of their own is a no-op.
            other = insert_frames if way == "batch" else insert_batch
            for source, bodies in frames.items():
                other(conn, [b for b in bodies if "Timestamp" in b or source != "asterisk"], source)
            assert conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0] == len(keys)
    assert stored["batch"] == stored["plain"]
    errors = [row[3] for row in stored["batch"]]
    assert errors[:2] == [None, None]
    assert errors[2].startswith("not valid JSON: unsupported Unicode escape sequence")
    assert errors[3].startswith("not valid JSON: invalid input syntax for type json")
    assert errors[4:] == [
        "frame is JSON but not an object: array",
        "not valid JSON: invalid input syntax for type json",
        None,
        None,
        "not an AMI event block (no Event: line)",
    ]


def test_only_frames_with_something_to_say_get_a_note(conn, insert):
    """A clean frame gets no row in cti.event_note; cti.event_outcome still has one row per
    frame and says `processed` for it. Rebuild drops a note that no longer holds."""
    seed_crm(conn)
    good = pbx.inbound_answered(builder(), KNOWN, LINE, "101")
    ignored = json.dumps({"event": "conference_join", "data": {}})
    insert(conn, [*good[:2], "not json", ignored, *good[2:]])
    notes = conn.execute(
        "SELECT status, detail FROM cti.event_note ORDER BY raw_event_id"
    ).fetchall()
    assert [n[0] for n in notes] == ["failed", "ignored"], notes
    rows = conn.execute("SELECT status, processed_at FROM cti.event_outcome").fetchall()
    assert len(rows) == len(good) + 2
    assert sorted(s for s, _ in rows) == ["failed", "ignored"] + ["processed"] * len(good)
    assert all(at is None for s, at in rows if s == "processed"), "processed as it was stored"
    # A note left by an earlier run (say, a failure since fixed) goes with the next rebuild.
    clean = conn.execute("SELECT min(raw_event_id) FROM cti.event_outcome").fetchone()[0]
    conn.execute(
        "INSERT INTO cti.event_note (raw_event_id, status, detail) VALUES (%s, 'failed', 'old')",
        [clean],
    )
    conn.execute("SELECT * FROM cti.rebuild()")
    assert (
        conn.execute("SELECT status, detail FROM cti.event_note ORDER BY raw_event_id").fetchall()
        == notes
    )


def test_a_fact_of_an_unknown_kind_is_refused_alone_and_among_others(conn):
    """A fact function that emits a kind cti.apply_facts does not know fails the frame
    (recorded beside it, as any failure), whether the fact comes alone (a lone frame, frame
    by frame: checked without a query) or in a round's set."""
    fact = "ROW(NULL, NULL, jsonb_populate_record(NULL::cti.fact, %s::jsonb), NULL, NULL)::cti.frame_fact"
    teleported, answered = '{"kind": "leg_teleported"}', '{"kind": "leg_answered", "leg": "x"}'
    for facts, args in (
        ([fact], [teleported]),
        ([fact, fact], [answered, teleported]),
        ([fact, fact], [teleported, teleported]),
    ):
        with (
            pytest.raises(
                psycopg.errors.RaiseException, match='unknown fact kind "leg_teleported"'
            ),
            conn.transaction(),
        ):  # a savepoint: the next case runs in a clean state
            conn.execute(f"SELECT cti.apply_facts('onlinepbx3', ARRAY[{', '.join(facts)}])", args)
