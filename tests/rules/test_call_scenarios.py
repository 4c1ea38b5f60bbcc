"""Call handling at the SQL boundary: insert raw onlinePBX 3.0 frames, assert calls and exact commands."""

from __future__ import annotations

import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    SHARED,
    builder,
    call_row,
    commands,
    insert_frames,
    outcomes,
    seed_crm,
)

# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


@pytest.fixture
def crm(conn):
    return seed_crm(conn)


def test_known_caller_answered(conn, crm):
    b = builder()
    insert_frames(conn, pbx.inbound_answered(b, KNOWN, LINE, "102"))
    call = call_row(conn, b.call_uuid)
    assert (
        call["direction"],
        call["external_number"],
        call["client_id"],
        call["client_match"],
    ) == ("inbound", "+74951234567", crm["ivanov"], "exact")
    assert (call["answered_by"], call["outcome"], call["extension_chain"]) == (
        "102",
        "answered",
        ["102"],
    )
    cid = call["call_id"]
    assert commands(conn) == [
        ("emp", crm["Petrova"], "ring", cid),
        ("emp", crm["Sidorov"], "ring", cid),
        ("ws", crm["ws-102"], "open_card", cid),
        ("ws", crm["ws-102"], "call_ended", cid),
    ]
    ring = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'ring' LIMIT 1").fetchone()[0]
    assert ring["number"] == "+74951234567" and ring["client_name"] == "Ivan Ivanov"
    assert (
        ring["company"] == "Romashka"
        and ring["manager_surname"] == "Petrova"
        and ring["is_new"] is False
    )
    assert all(status == "processed" for _, status, _ in outcomes(conn))


def test_unknown_caller_is_registered_once_as_a_lead(conn, crm):
    for seed in (1, 2):  # two calls from the same new number
        insert_frames(conn, pbx.inbound_answered(builder(seed), "8 (916) 000-11-22", LINE, "101"))
    leads = conn.execute(
        "SELECT c.id, c.name FROM pgcti_refcrm.client c JOIN pgcti_refcrm.client_phone p ON p.client_id = c.id"
        " WHERE c.is_lead AND p.e164 = '+79160001122'"
    ).fetchall()
    assert len(leads) == 1
    matches = conn.execute("SELECT client_match, client_id FROM cti.call ORDER BY id").fetchall()
    assert matches == [("new", leads[0][0]), ("exact", leads[0][0])]
    first_ring = conn.execute(
        "SELECT payload FROM cti.outbox WHERE type = 'ring' ORDER BY created_at LIMIT 1"
    ).fetchone()[0]
    assert first_ring["is_new"] is True and first_ring["number"] == "+79160001122"


def test_shared_number_is_shown_as_ambiguous(conn, crm):
    b = builder()
    insert_frames(conn, pbx.inbound_answered(b, "88125550000", LINE, "101"))
    call = call_row(conn, b.call_uuid)
    assert call["client_match"] == "ambiguous" and call["client_id"] is None
    card = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()[0]
    assert sorted(c["client_id"] for c in card["candidates"]) == sorted(
        [crm["shared_a"], crm["shared_b"]]
    )
    assert SHARED  # the fixture stores one of the two in a messy format


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [("NO_ANSWER", "missed"), ("ORIGINATOR_CANCEL", "abandoned"), ("USER_BUSY", "busy")],
)
def test_unanswered_calls_ring_but_pop_nothing(conn, crm, cause, outcome):
    b = builder()
    insert_frames(conn, pbx.inbound_unanswered(b, KNOWN, LINE, ["101", "102"], cause))
    assert call_row(conn, b.call_uuid)["outcome"] == outcome
    # Rings while it rang; then a callback task for the client's manager (57_callbacks.sql).
    assert [c[2] for c in commands(conn)] == ["ring", "ring", "callback_task"]
    assert commands(conn)[-1][:2] == ("emp", crm["Petrova"])


def test_ring_all_first_answer_wins(conn, crm):
    b = builder()
    insert_frames(conn, pbx.ring_all(b, KNOWN, LINE, ["101", "102", "103"], winner="103"))
    assert call_row(conn, b.call_uuid)["answered_by"] == "103"
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-103"], "open_card"),
        (crm["ws-103"], "call_ended"),
    ]


def test_blind_transfer_chain_moves_the_card_close_first(conn, crm):
    b = builder()
    insert_frames(conn, pbx.blind_transfer_chain(b, KNOWN, LINE, ["101", "102", "103"]))
    call = call_row(conn, b.call_uuid)
    assert call["extension_chain"] == ["101", "102", "103"] and call["last_extension"] == "103"
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "close_card"),
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "close_card"),
        (crm["ws-103"], "open_card"),
        (crm["ws-103"], "call_ended"),
    ]


def test_attended_transfer_moves_the_card_when_joined_not_when_consulting(conn, crm):
    b = builder()
    frames = pbx.attended_transfer(b, KNOWN, LINE, "101", "102")
    join = next(
        i
        for i, f in enumerate(frames)
        if f["event"] == "channel_bridge"
        and i > 6
        and f["data"]["uuids"][0] == frames[0]["data"]["uuid"]
    )
    insert_frames(conn, frames[:join])  # consulting: the card stays at 101
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [(crm["ws-101"], "open_card")]
    insert_frames(conn, frames[join:])
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "close_card"),
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "call_ended"),
    ]
    call = call_row(conn, b.call_uuid)
    assert call["extension_chain"] == ["101", "102"] and call["hold_count"] == 1


def test_hold_is_counted(conn, crm):
    b = builder()
    insert_frames(conn, pbx.inbound_with_hold(b, KNOWN, LINE, "101"))
    assert call_row(conn, b.call_uuid)["hold_count"] == 1


def test_outbound_call_pops_at_the_dialling_desk_without_ringing_anyone(conn, crm):
    b = builder()
    insert_frames(conn, pbx.outbound(b, "102", "84951234567"))
    call = call_row(conn, b.call_uuid)
    assert (call["direction"], call["client_id"], call["answered_by"]) == (
        "outbound",
        crm["ivanov"],
        "102",
    )
    assert [(c[1], c[2]) for c in commands(conn)] == [
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "call_ended"),
    ]


def test_outbound_to_unknown_number_registers_nothing(conn, crm):
    b = builder()
    insert_frames(conn, pbx.outbound(b, "101", "+7 903 111 22 33", answered=False))
    call = call_row(conn, b.call_uuid)
    assert (call["client_match"], call["outcome"]) == ("none", "no_answer")
    assert conn.execute("SELECT count(*) FROM pgcti_refcrm.client WHERE is_lead").fetchone()[0] == 0


def test_internal_call_has_no_pop(conn, crm):
    b = builder()
    insert_frames(conn, pbx.internal(b, "101", "102"))
    call = call_row(conn, b.call_uuid)
    assert (call["direction"], call["outcome"], call["answered_by"]) == (
        "internal",
        "answered",
        "102",
    )
    assert commands(conn) == []


def test_extension_without_workstation_is_recorded_not_a_crash(conn, crm):
    b = builder()
    frames = pbx.inbound_answered(b, KNOWN, LINE, "104")
    insert_frames(conn, frames[:5])
    note = conn.execute("SELECT routing_note FROM cti.call").fetchone()[0]
    assert note == "extension 104 has no workstation"
    insert_frames(conn, pbx.inbound_answered(builder(2), KNOWN, LINE, "999"))
    assert [c[2] for c in commands(conn, "ws")] == []
    assert all(status == "processed" for _, status, _ in outcomes(conn))


def test_duplicate_frames_are_stored_once_and_send_nothing_twice(conn, crm):
    frames = pbx.blind_transfer_chain(builder(), KNOWN, LINE, ["101", "102"])
    insert_frames(conn, frames)
    sent = commands(conn)
    insert_frames(conn, frames)  # a reconnect replay
    insert_frames(conn, frames[3:7])
    assert commands(conn) == sent
    assert conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0] == len(frames)


def test_answer_before_create_still_pops_once(conn, crm):
    b = builder()
    frames = pbx.inbound_answered(b, KNOWN, LINE, "101")
    create_b, answer, bridge = frames[1], frames[2], frames[3]
    insert_frames(conn, [answer, bridge, frames[0], create_b] + frames[4:])
    assert [(c[1], c[2]) for c in commands(conn, "ws")] == [
        (crm["ws-101"], "open_card"),
        (crm["ws-101"], "call_ended"),
    ]
    assert call_row(conn, b.call_uuid)["answered_by"] == "101"


def test_two_concurrent_calls_are_kept_apart(conn, crm):
    a, b = builder(1), builder(2)
    fa = pbx.inbound_answered(a, KNOWN, LINE, "101")
    fb = pbx.inbound_answered(b, "+79035550101", LINE, "102")
    interleaved = [f for pair in zip(fa, fb, strict=True) for f in pair]
    insert_frames(conn, interleaved)
    assert call_row(conn, a.call_uuid)["answered_by"] == "101"
    assert call_row(conn, b.call_uuid)["answered_by"] == "102"
    ws = commands(conn, "ws")
    assert sorted((c[1], c[2]) for c in ws) == sorted(
        [
            (crm["ws-101"], "open_card"),
            (crm["ws-101"], "call_ended"),
            (crm["ws-102"], "open_card"),
            (crm["ws-102"], "call_ended"),
        ]
    )
