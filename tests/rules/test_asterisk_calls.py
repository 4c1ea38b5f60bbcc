"""Asterisk AMI calls at the SQL boundary (issue 13, parts 3 and 4), for what the twin
scenarios do not cover: our own Asterisk 18-22 traces (tests/support/ami_traces.py: a FreePBX
queue through Local/ channels that are kept, a ring group whose Local/ channels are
optimised away, click-to-call through Originate), a queue told by its Agent* events,
trunk rules, the channel adapter, bad blocks, concurrent calls and rebuild."""

from __future__ import annotations

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block, from_onlinepbx3_timed
from tests.support.ami_traces import (
    bridge,
    chan,
    click_to_call_through_local,
    dest,
    freepbx_queue_call,
    ring_group_with_local_optimisation,
)
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    builder,
    commands,
    insert_frames,
    outcomes,
    seed_crm,
)

HISTORY = """SELECT pbx_call_id, direction, external_number, answered_by, extension_chain, outcome, hold_count
               FROM cti.call_history_v1 ORDER BY call_id"""


# These tests need no COMMIT: `conn` is a transaction rolled back at their end.
pytestmark = pytest.mark.rolled_back


def test_a_queue_member_behind_a_local_channel_gets_the_call_and_the_card(conn):
    crm = seed_crm(conn)
    insert_frames(conn, freepbx_queue_call(), source="asterisk")
    assert conn.execute(HISTORY).fetchall() == [
        ("1700000100.40", "inbound", "+74951234567", "101", ["101"], "answered", 1)
    ]
    cid = conn.execute("SELECT id FROM cti.call").fetchone()[0]
    assert commands(conn) == [
        ("emp", crm["Petrova"], "ring", cid),
        ("emp", crm["Sidorov"], "ring", cid),
        ("ws", crm["ws-101"], "open_card", cid),
        ("ws", crm["ws-101"], "call_ended", cid),
    ]
    notes = {detail for _, status, detail in outcomes(conn) if status == "ignored"}
    assert "DialBegin to a Local/ channel: the channel it dials in turn is followed" in notes
    assert "QueueCallerJoin: the caller's leg and the Dial events say the same" in notes
    assert 'event "VarSet" carries no call fact' in notes
    assert {status for _, status, _ in outcomes(conn)} == {"processed", "ignored"}


def test_a_ring_group_through_local_channels_optimised_away_first_answer_wins(conn):
    crm = seed_crm(conn)
    insert_frames(conn, ring_group_with_local_optimisation(), source="asterisk")
    assert conn.execute(HISTORY).fetchall() == [
        ("1700000200.60", "inbound", "+74951234567", "102", ["102"], "answered", 0)
    ]
    cid = conn.execute("SELECT id FROM cti.call").fetchone()[0]
    assert [c for c in commands(conn) if c[0] == "ws"] == [
        ("ws", crm["ws-102"], "open_card", cid),
        ("ws", crm["ws-102"], "call_ended", cid),
    ]
    bridges = conn.execute("SELECT leg_a, leg_b FROM cti.call_bridge").fetchall()
    assert bridges == [("1700000200.60", "1700000200.73")], "one pair: the customer and 102's phone"
    notes = {detail for _, status, detail in outcomes(conn) if status == "ignored"}
    assert "LocalOptimizationBegin: the BridgeEnter that follows says who talks" in notes


def test_a_trunk_named_in_digits_is_a_trunk_by_the_rules_in_config(conn):
    seed_crm(conn)
    # A trunk whose endpoint is named after its number looks like an extension's device:
    # its channel is taken for an extension dialling out the line it came in on...
    trunk = "PJSIP/74950001122-0000001a"
    facts = """SELECT c.direction, c.dialled, l.caller, l.caller_is_extension FROM cti.call c
                 JOIN cti.call_leg l ON l.call_id = c.id AND l.leg_uuid = c.pbx_call_id"""
    conn.execute("UPDATE cti.config SET ami_trunk_contexts = '{}'")
    with conn.transaction(force_rollback=True):
        insert_frames(conn, freepbx_queue_call(trunk), source="asterisk")
        assert conn.execute(facts).fetchall() == [("outbound", "74950001122", "74950001122", True)]
    # ...until a DBA names it a trunk: by its channel name,
    conn.execute("UPDATE cti.config SET ami_trunk_channels = ARRAY['^PJSIP/74950001122-']")
    with conn.transaction(force_rollback=True):
        insert_frames(conn, freepbx_queue_call(trunk), source="asterisk")
        assert conn.execute(facts).fetchall() == [("inbound", "74950001122", "+74951234567", False)]
    # or by the context its calls come in at (FreePBX: from-pstn, a default).
    conn.execute(
        "UPDATE cti.config SET ami_trunk_channels = '{}', ami_trunk_contexts = ARRAY['from-pstn']"
    )
    with conn.transaction(force_rollback=True):
        insert_frames(conn, freepbx_queue_call(trunk), source="asterisk")
        assert conn.execute(facts).fetchall() == [("inbound", "74950001122", "+74951234567", False)]
    # A context names the trunk at its Newchannel only; the phone it dials directly is still
    # rung by the customer (known by the trunk's leg), and first answer wins.
    b = builder(5)
    blocks = [
        blk
        for _, blk in from_onlinepbx3_timed(b.times, pbx.inbound_answered(b, KNOWN, LINE, "102"))
    ]
    insert_frames(
        conn, [blk.replace("PJSIP/mts-", "PJSIP/74950001122-") for blk in blocks], source="asterisk"
    )
    assert conn.execute(
        "SELECT direction, external_number, answered_by, outcome FROM cti.call"
    ).fetchall() == [("inbound", "+74951234567", "102", "answered")]


def test_the_channel_adapter_maps_peers_named_otherwise(conn):
    crm = seed_crm(conn)
    b = builder(3)
    blocks = [
        blk
        for _, blk in from_onlinepbx3_timed(b.times, pbx.inbound_answered(b, KNOWN, LINE, "102"))
    ]
    # This site names its PJSIP endpoints after people: 102 is "sidorov".
    blocks = [blk.replace("PJSIP/102-", "PJSIP/sidorov-") for blk in blocks]
    with conn.transaction(force_rollback=True):
        insert_frames(conn, blocks, source="asterisk")
        # by default a peer that is not digits is no extension: nobody answered, no card
        assert conn.execute("SELECT answered_by, card_workstation_id FROM cti.call").fetchall() == [
            (None, None)
        ]
    conn.execute(
        """CREATE OR REPLACE FUNCTION cti.crm_extension_for_channel(p_channel text) RETURNS text
           LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
               SELECT CASE WHEN p_channel LIKE 'PJSIP/sidorov-%' THEN '102'
                           ELSE substring(p_channel FROM '^[A-Za-z0-9]+/([0-9]+)-[0-9a-fA-F]+$') END $$"""
    )
    insert_frames(conn, blocks, source="asterisk")
    assert conn.execute("SELECT answered_by, outcome FROM cti.call").fetchall() == [
        ("102", "answered")
    ]
    assert [c[1:3] for c in commands(conn, "ws")] == [
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "call_ended"),
    ]


def test_blocks_that_lack_what_a_fact_needs_fail_naming_the_field(conn):
    insert_frames(
        conn,
        [
            block(
                "DialBegin",
                {
                    "Channel": "PJSIP/mts-00000001",
                    "DestChannel": "PJSIP/101-00000002",
                    "DestLinkedid": "1.1",
                },
            ),
            block(
                "Hangup", {"Channel": "PJSIP/101-00000002", "Uniqueid": "1.2", "Linkedid": "1.1"}
            ),
            block("BridgeEnter", {"Channel": "PJSIP/101-00000002", "Uniqueid": "1.2"}),
            block("Newchannel", {"Channel": "SIP/101-00000002", "Uniqueid": "1414510600.0"}),
            block("MysteryEvent", {"Channel": "PJSIP/101-00000002"}),
            "Channel: PJSIP/101-00000002\r\nUniqueid: 1.2",
        ],
        source="asterisk",
    )
    assert [o[1:] for o in outcomes(conn)] == [
        ("failed", 'DialBegin frame lacks field "block.DestUniqueid"'),
        ("processed", None),
        ("failed", 'BridgeEnter frame lacks field "block.BridgeUniqueid"'),
        (
            "ignored",
            "Newchannel without a Linkedid is from Asterisk 11 or older (before AMI 2.0), "
            "which pgcti does not read",
        ),
        ("ignored", 'unknown event type "MysteryEvent"'),
        ("failed", "not an AMI event block (no Event: line)"),
    ]


def test_concurrent_ami_calls_stay_apart_and_rebuild_gives_them_again(conn):
    crm = seed_crm(conn)
    calls = []
    for seed, (customer, ext) in enumerate(
        [(KNOWN, "101"), ("+79030001122", "102"), ("+79035550000", "103")]
    ):
        b = builder(seed)
        calls.append(from_onlinepbx3_timed(b.times, pbx.inbound_answered(b, customer, LINE, ext)))
    interleaved = [blk for _, blk in sorted((at, blk) for call in calls for at, blk in call)]
    insert_frames(conn, interleaved, source="asterisk")
    live = conn.execute(HISTORY).fetchall()
    assert sorted((r[2], r[3], r[5]) for r in live) == [
        ("+74951234567", "101", "answered"),
        ("+79030001122", "102", "answered"),
        ("+79035550000", "103", "answered"),
    ]
    assert sorted((c[1], c[2]) for c in commands(conn, "ws")) == sorted(
        [(crm[f"ws-{e}"], t) for e in ("101", "102", "103") for t in ("open_card", "call_ended")]
    )
    conn.execute("SELECT cti.rebuild()")
    assert conn.execute(HISTORY).fetchall() == live


def test_click_to_call_by_originating_the_phone_is_an_outbound_call(conn):
    """A CRM's click-to-call as AMI Originate does it with Channel: PJSIP/102: the phone's
    channel starts the call at extension "s" (it has dialled nothing yet), then dials out."""
    crm = seed_crm(conn)
    b = builder(8)
    blocks = [
        blk for _, blk in from_onlinepbx3_timed(b.times, pbx.outbound(b, "102", "84951234567"))
    ]
    assert "Exten: 84951234567" in blocks[0]
    blocks[0] = blocks[0].replace("Exten: 84951234567", "Exten: s")
    insert_frames(conn, blocks, source="asterisk")
    assert conn.execute(
        "SELECT direction, external_number, answered_by, outcome FROM cti.call"
    ).fetchall() == [("outbound", "+74951234567", "102", "answered")]
    assert [c[1:3] for c in commands(conn, "ws")] == [
        (crm["ws-102"], "open_card"),
        (crm["ws-102"], "call_ended"),
    ]


def test_click_to_call_through_a_local_channel_rings_nobody_and_pops_the_callers_card(conn):
    crm = seed_crm(conn)
    insert_frames(conn, click_to_call_through_local("84951234567"), source="asterisk")
    assert conn.execute(HISTORY).fetchall() == [
        ("1700000300.90", "outbound", "+74951234567", "101", ["101"], "answered", 0)
    ]
    cid = conn.execute("SELECT id FROM cti.call").fetchone()[0]
    assert commands(conn) == [
        ("ws", crm["ws-101"], "open_card", cid),
        ("ws", crm["ws-101"], "call_ended", cid),
    ]
    card = conn.execute("SELECT payload FROM cti.outbox WHERE type = 'open_card'").fetchone()[0]
    assert card["client_name"] == "Ivan Ivanov" and card["direction"] == "outbound"


def test_queue_agent_events_alone_tell_who_rang_and_who_answered(conn):
    """A queue with PJSIP members (no Local/ channels), read from the Agent* events only (a
    manager user whose eventfilter keeps them and drops Dial*): 101 rings and does not
    answer (AgentRingNoAnswer), 102 answers (AgentConnect)."""
    seed_crm(conn)
    lid = "1700000400.20"
    t = chan("PJSIP/mts-00000050", lid, "84951234567", "74950001122", "from-pstn", 6, lid)
    m1 = chan("PJSIP/101-00000051", "1700000400.21", "<unknown>", "s", "from-queue", 5, lid)
    m2 = chan("PJSIP/102-00000052", "1700000400.22", "<unknown>", "s", "from-queue", 5, lid)
    m2_up = {**m2, "ChannelState": 6, "ChannelStateDesc": "Up"}
    queue = {"Queue": "400", "Interface": "PJSIP/101"}
    frames = [
        block("Newchannel", {**t, "ChannelState": 0, "ChannelStateDesc": "Down"}),
        block("QueueCallerJoin", {**t, "Queue": "400", "Position": 1, "Count": 1}),
        block("AgentCalled", {**t, **dest(m1), **queue, "MemberName": "101"}),
        block("AgentCalled", {**t, **dest(m2), **queue, "MemberName": "102"}),
        block(
            "AgentRingNoAnswer", {**t, **dest(m1), **queue, "MemberName": "101", "RingTime": 15000}
        ),
        block("Hangup", {**m1, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block(
            "AgentConnect",
            {**t, **dest(m2_up), **queue, "MemberName": "102", "HoldTime": 18, "RingTime": 3},
        ),
        block("BridgeEnter", {**bridge("b-queue", 1), **t}),
        block("BridgeEnter", {**bridge("b-queue", 2), **m2_up}),
        block("BridgeLeave", {**bridge("b-queue", 1), **t}),
        block("Hangup", {**t, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block(
            "AgentComplete",
            {**t, **dest(m2_up), **queue, "MemberName": "102", "TalkTime": 40, "Reason": "caller"},
        ),
        block("BridgeLeave", {**bridge("b-queue", 0), **m2_up}),
        block("Hangup", {**m2_up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
    ]
    insert_frames(conn, frames, source="asterisk")
    assert conn.execute(HISTORY).fetchall() == [
        ("1700000400.20", "inbound", "+74951234567", "102", ["102"], "answered", 0)
    ]
    assert conn.execute(
        "SELECT destination, hangup_cause FROM cti.call_leg ORDER BY leg_uuid"
    ).fetchall() == [
        ("+74950001122", "NORMAL_CLEARING"),
        ("101", "NO_ANSWER"),
        ("102", "NORMAL_CLEARING"),
    ]


def test_a_trunk_pattern_that_does_not_compile_is_refused_when_set(conn):
    with (
        pytest.raises(
            psycopg.errors.CheckViolation, match="ami_trunk_channels_are_regular_expressions"
        ),
        conn.transaction(),
    ):
        conn.execute("UPDATE cti.config SET ami_trunk_channels = ARRAY['^PJSIP/mts-', '^SIP/(']")
    conn.execute(
        "UPDATE cti.config SET ami_trunk_channels = ARRAY['^PJSIP/mts-', '^SIP/(provider|backup)-']"
    )


@pytest.mark.parametrize(
    "channel, extension",
    [
        ("PJSIP/101-00000007", "101"),
        ("SIP/101-0000001d", "101"),
        ("IAX2/101-1234", "101"),
        ("PJSIP/150010002-0000001d<ZOMBIE>", "150010002"),
        ("PJSIP/mts-0000001a", None),  # a named trunk
        (
            "SIP/9170-12-0000003c",
            None,
        ),  # not all digits, and no event says more (test_ami_truth.py)
        ("Local/101@from-queue-00000005;2", None),  # a wire, not a leg
        ("PJSIP/101", None),  # not a channel name (no sequence number)
        ("DAHDI/i1/74951234567-1", None),  # an ISDN line
    ],
)
def test_the_default_extension_of_a_channel(conn, channel, extension):
    by_name = "SELECT cti.ami_extension(%s, NULL, NULL, NULL)"
    assert conn.execute(by_name, [channel]).fetchone()[0] == extension


def test_a_forged_line_in_a_caller_name_never_ends_another_call(conn):
    """A Hangup whose CallerIDName carries CR/LF and forged Uniqueid/Linkedid lines of a
    call under way (issue 29, part 10). Asterisk 22 escapes a line break in a name as
    \\r\\n, so such a block repeats a key Asterisk sends once: it is refused, with the
    reason beside it, and the call under way stays up."""
    seed_crm(conn)
    frames = [f for f in freepbx_queue_call() if "Event: Hangup\r\n" not in f]
    insert_frames(conn, frames, source="asterisk")
    ((victim,),) = conn.execute(
        "SELECT pbx_call_id FROM cti.call WHERE ended_at IS NULL"
    ).fetchall()
    forged = (
        "Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/999-00000099\r\n"
        "ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 999\r\n"
        f"CallerIDName: Evil\r\nUniqueid: {victim}\r\nLinkedid: {victim}\r\n"
        "ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\n"
        "AccountCode: \r\nContext: from-internal\r\nExten: s\r\nPriority: 1\r\n"
        "Uniqueid: 1700000999.1\r\nLinkedid: 1700000999.1\r\nCause: 16\r\nCause-txt: Normal Clearing"
    )
    insert_frames(conn, [forged], source="asterisk")
    assert conn.execute(
        "SELECT ended_at IS NULL FROM cti.call WHERE pbx_call_id = %s", [victim]
    ).fetchone() == (True,)
    status, detail = outcomes(conn)[-1][1:]
    assert status == "failed", (status, detail)
    assert "AMI Hangup block repeats Linkedid, Uniqueid" in detail, detail
    # A block that repeats only the variables Asterisk does repeat is read as before.
    assert conn.execute(
        "SELECT cti.ami_repeated_keys(cti.ami_block("
        "'Event: Newchannel' || chr(13) || chr(10) || 'ChanVariable: a=1' || chr(13) || chr(10)"
        " || 'ChanVariable: b=2'))"
    ).fetchone() == (None,)
