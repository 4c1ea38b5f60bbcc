"""onlinePBX presence through the raw log (db/logic/56_presence.sql): API 2.0's blf and
registration events, API 3.0's user_blf and user_registration, frame by frame, in a batch
(rounds) and alone (the lone-frame path); what cannot be read is noted, never guessed."""

from __future__ import annotations

import random
import time

import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.onlinepbx3_calls import CallBuilder
from tests.rules.test_batch_processing import function_calls
from tests.support.crm_fixture import KNOWN, LINE, insert_batch, insert_frames, seed_crm


@pytest.fixture
def crm(conn):
    return seed_crm(conn)


def presence(conn) -> dict[str, str]:
    return dict(conn.execute("SELECT extension, state FROM cti.presence_now()").fetchall())


def outcomes(conn, count: int) -> list[tuple]:
    """The last `count` frames' outcomes, oldest first."""
    rows = conn.execute(
        "SELECT status, detail FROM cti.event_outcome ORDER BY raw_event_id DESC LIMIT %s", [count]
    ).fetchall()
    return rows[::-1]


def v2(name: str, **data: str) -> dict:
    return {"name": name, "args": [data]}


def v3(event: str, **data: str) -> dict:
    return {"event": event, "data": data}


def test_2_0_unregistered_and_registration_events(conn, crm):
    insert_frames(conn, [v2("blf", uid="101", status="unregistered", uuid="u1")], "onlinepbx2")
    assert presence(conn)["101"] == "offline"
    insert_frames(conn, [v2("registration", uid="101", status="registered")], "onlinepbx2")
    assert presence(conn)["101"] == "available"
    assert outcomes(conn, 1) == [("processed", "presence of 101: NOT_INUSE")]
    # A phone re-registers every few minutes, on a call too: that is no news.
    insert_frames(conn, [v2("blf", uid="101", status="answered", uuid="u2")], "onlinepbx2")
    # (a frame of its own: the same bytes twice would be one frame, by the dedup key)
    insert_frames(
        conn, [v2("registration", uid="101", status="registered", timestamp="2")], "onlinepbx2"
    )
    assert presence(conn)["101"] == "busy"
    assert outcomes(conn, 1) == [("processed", "presence of 101: registered again (unchanged)")]
    insert_frames(conn, [v2("registration", uid="101", status="expired")], "onlinepbx2")
    assert presence(conn)["101"] == "offline"


def test_3_0_user_blf_and_registration_alone_and_in_a_batch_with_calls(conn, crm):
    conn.execute("SET track_functions = 'all'")
    insert_frames(conn, [v3("user_registration", user="102", state="registered")])  # alone
    assert presence(conn)["102"] == "available"
    assert outcomes(conn, 1) == [("processed", "presence of 102: NOT_INUSE")]
    b = CallBuilder(random.Random(3), clock=time.time())
    call = pbx.inbound_answered(b, KNOWN, LINE, "101")
    ringing, answered = (
        v3("user_blf", uid="101", status="ringing"),
        v3("user_blf", uid="101", status="answered"),
    )
    batch = [call[0], ringing, *call[1:3], answered, *call[3:]]
    insert_batch(conn, batch)
    assert presence(conn)["101"] == "busy"
    notes = outcomes(conn, len(batch))
    assert notes[1] == ("processed", "presence of 101: RINGING")
    assert notes[4] == ("processed", "presence of 101: INUSE")
    # ... and the call around them was derived as ever: answered at 101.
    assert conn.execute("SELECT outcome, answered_by FROM cti.call").fetchall() == [
        ("answered", "101")
    ]
    # The fast paths took them (a lone frame, then the batch in rounds): none went frame by frame.
    calls = function_calls(conn)
    assert (calls["process_lone_frame"], calls["process_in_rounds"]) == (1, 1)
    assert calls["process_frame_by_frame"] == calls["process_and_record"] == 0


def test_an_event_pgcti_cannot_read_is_noted_with_its_fields_and_changes_nothing(conn, crm):
    insert_frames(conn, [v3("user_registration", sip_user="103", contact="sip:103@10.0.0.5")])
    assert "103" not in presence(conn)
    assert outcomes(conn, 1) == [
        (
            "ignored",
            "presence: user_registration with no extension and state pgcti reads"
            " (fields: contact, sip_user)",
        )
    ]
    insert_frames(conn, [v2("registration", uid="+74951234567", status="registered")], "onlinepbx2")
    assert presence(conn) == {}, "a customer's number is no extension"
