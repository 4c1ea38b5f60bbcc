"""Asterisk AMI calls at the SQL boundary (issue 13, parts 3 and 4): traces of our own for
Asterisk 18-22 with PJSIP, written from the Asterisk documentation of each event, for what
the twin scenarios do not cover: queues through Local/ channels that are not optimised
away (as FreePBX queues dial their members), trunk rules, the channel adapter, bad blocks,
concurrent calls and rebuild."""

from __future__ import annotations

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block, from_onlinepbx3_timed
from tests.crm_fixture import KNOWN, LINE, builder, commands, insert_frames, outcomes, seed_crm

HISTORY = """SELECT pbx_call_id, direction, external_number, answered_by, extension_chain, outcome, hold_count
               FROM cti.call_history_v1 ORDER BY call_id"""


@pytest.fixture
def conn(rolled_back):
    """These tests need no COMMIT: each runs in a transaction rolled back at its end."""
    return rolled_back


def chan(
    name: str,
    uniqueid: str,
    cid: str,
    exten: str,
    context: str,
    state: int = 6,
    linkedid: str = "1700000100.40",
) -> dict:
    states = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
    return {
        "Channel": name,
        "ChannelState": state,
        "ChannelStateDesc": states[state],
        "CallerIDNum": cid,
        "CallerIDName": "<unknown>",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "en",
        "AccountCode": "",
        "Context": context,
        "Exten": exten,
        "Priority": 1,
        "Uniqueid": uniqueid,
        "Linkedid": linkedid,
    }


def dest(fields: dict) -> dict:
    return {f"Dest{k}": v for k, v in fields.items()}


def bridge(bridge_id: str, n: int) -> dict:
    return {
        "BridgeUniqueid": bridge_id,
        "BridgeType": "basic",
        "BridgeTechnology": "simple_bridge",
        "BridgeNumChannels": n,
    }


def freepbx_queue_call(trunk: str = "PJSIP/mts-00000010", caller: str = "84951234567") -> list[str]:
    """A customer calls line 74950001122 into FreePBX queue 400, whose member 101 is dialled
    as Local/101@from-queue/n (the /n keeps the Local/ channel: no optimisation). 101
    answers, holds the customer once, and the customer hangs up."""
    t = chan(trunk, "1700000100.40", caller, "74950001122", "from-pstn", 0)
    l1 = chan("Local/101@from-queue-00000005;1", "1700000100.41", caller, "400", "from-queue", 0)
    l2 = chan("Local/101@from-queue-00000005;2", "1700000100.42", caller, "101", "from-queue", 0)
    ph = chan("PJSIP/101-00000011", "1700000100.43", "<unknown>", "s", "from-internal", 0)
    up = {
        **ph,
        "ChannelState": 6,
        "ChannelStateDesc": "Up",
        "CallerIDNum": "101",
        "ConnectedLineNum": caller,
    }
    return [
        block("Newchannel", t),
        block("Newstate", {**t, "ChannelState": 4, "ChannelStateDesc": "Ring"}),
        block("VarSet", {**t, "Variable": "__FROM_DID", "Value": "74950001122"}),
        block("Newstate", {**t, "ChannelState": 6, "ChannelStateDesc": "Up"}),
        block("QueueCallerJoin", {**t, "Queue": "400", "Position": 1, "Count": 1}),
        block("Newchannel", l1),
        block("Newchannel", l2),
        block(
            "AgentCalled",
            {
                **t,
                **dest(l1),
                "Queue": "400",
                "MemberName": "101",
                "Interface": "Local/101@from-queue/n",
            },
        ),
        block("DialBegin", {**t, **dest(l1), "DialString": "101@from-queue/n"}),
        block("Newchannel", ph),
        block("DialBegin", {**l2, **dest(ph), "DialString": "101"}),
        block(
            "Newstate",
            {
                **ph,
                "ChannelState": 5,
                "ChannelStateDesc": "Ringing",
                "CallerIDNum": "101",
                "ConnectedLineNum": caller,
            },
        ),
        block("Newstate", up),
        block("DialEnd", {**l2, **dest(up), "DialStatus": "ANSWER"}),
        block("DialEnd", {**t, **dest(l1), "DialStatus": "ANSWER"}),
        block(
            "AgentConnect",
            {**t, **dest(l1), "Queue": "400", "MemberName": "101", "HoldTime": 4, "RingTime": 3},
        ),
        block("BridgeEnter", {**bridge("b-local-side", 1), **l2}),
        block("BridgeEnter", {**bridge("b-local-side", 2), **up}),
        block("BridgeEnter", {**bridge("b-queue-side", 1), **t}),
        block("BridgeEnter", {**bridge("b-queue-side", 2), **l1}),
        block("Hold", {**up, "MusicClass": "default"}),
        block("Unhold", up),
        block("BridgeLeave", {**bridge("b-queue-side", 1), **t}),
        block("Hangup", {**t, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-queue-side", 0), **l1}),
        block("Hangup", {**l1, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block(
            "AgentComplete", {**t, **dest(l1), "Queue": "400", "TalkTime": 40, "Reason": "caller"}
        ),
        block("BridgeLeave", {**bridge("b-local-side", 1), **l2}),
        block("Hangup", {**l2, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-local-side", 0), **up}),
        block("Hangup", {**up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
    ]


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


def ring_group_with_local_optimisation() -> list[str]:
    """Ring group 600 dials 101 and 102 through Local/...@from-internal channels; 102
    answers, and Asterisk optimises its Local/ channel away (LocalOptimizationBegin/End):
    102's phone moves into the trunk's bridge, the Local/ halves leave and hang up."""
    lid = "1700000200.60"
    t = chan("PJSIP/mts-00000020", lid, "84951234567", "74950001122", "from-pstn", 4, lid)
    legs = {}
    for ext, n, hexid in (("101", 61, "a"), ("102", 63, "b")):
        legs[ext] = (
            chan(
                f"Local/{ext}@from-internal-0000000{hexid};1",
                f"1700000200.{n}",
                "84951234567",
                ext,
                "from-internal",
                0,
                lid,
            ),
            chan(
                f"Local/{ext}@from-internal-0000000{hexid};2",
                f"1700000200.{n + 1}",
                "84951234567",
                ext,
                "from-internal",
                0,
                lid,
            ),
            chan(
                f"PJSIP/{ext}-0000002{hexid}",
                f"1700000200.{n + 10}",
                "<unknown>",
                "s",
                "from-internal",
                0,
                lid,
            ),
        )
    out = [
        block("Newchannel", {**t, "ChannelState": 0, "ChannelStateDesc": "Down"}),
        block("Newstate", t),
    ]
    for one, two, phone in legs.values():
        out += [
            block("Newchannel", one),
            block("Newchannel", two),
            block("DialBegin", {**t, **dest(one), "DialString": one["Exten"] + "@from-internal"}),
            block("Newchannel", phone),
            block("DialBegin", {**two, **dest(phone), "DialString": one["Exten"]}),
        ]
    one, two, phone = legs["102"]
    up = {**phone, "ChannelState": 6, "ChannelStateDesc": "Up", "CallerIDNum": "102"}
    t_up = {**t, "ChannelState": 6, "ChannelStateDesc": "Up"}
    lone, ltwo, lphone = legs["101"]
    out += [
        block("Newstate", up),
        block("DialEnd", {**two, **dest(up), "DialStatus": "ANSWER"}),
        block("DialEnd", {**t, **dest(one), "DialStatus": "ANSWER"}),
        block("Newstate", t_up),
        block("DialEnd", {**t, **dest(lone), "DialStatus": "CANCEL"}),
        block("DialEnd", {**ltwo, **dest(lphone), "DialStatus": "CANCEL"}),
        block("Hangup", {**lphone, "Cause": 26, "Cause-txt": "Answered elsewhere"}),
        block("Hangup", {**lone, "Cause": 26, "Cause-txt": "Answered elsewhere"}),
        block("Hangup", {**ltwo, "Cause": 26, "Cause-txt": "Answered elsewhere"}),
        block("BridgeEnter", {**bridge("b-phone", 1), **up}),
        block("BridgeEnter", {**bridge("b-phone", 2), **two}),
        block("BridgeEnter", {**bridge("b-trunk", 1), **t_up}),
        block("BridgeEnter", {**bridge("b-trunk", 2), **one}),
        block(
            "LocalOptimizationBegin",
            {
                **{f"LocalOne{k}": v for k, v in one.items()},
                **{f"LocalTwo{k}": v for k, v in two.items()},
                **{f"Source{k}": v for k, v in up.items()},
                "DestUniqueId": lid,
                "Id": 1,
            },
        ),
        block("BridgeLeave", {**bridge("b-trunk", 1), **one}),
        block("BridgeLeave", {**bridge("b-phone", 1), **up}),
        block("BridgeEnter", {**bridge("b-trunk", 2), **up}),
        block("BridgeLeave", {**bridge("b-phone", 0), **two}),
        block(
            "LocalOptimizationEnd",
            {
                **{f"LocalOne{k}": v for k, v in one.items()},
                **{f"LocalTwo{k}": v for k, v in two.items()},
                "Success": "Yes",
                "Id": 1,
            },
        ),
        block("Hangup", {**one, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("Hangup", {**two, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-trunk", 1), **t_up}),
        block("Hangup", {**t_up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-trunk", 0), **up}),
        block("Hangup", {**up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
    ]
    return out


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
    # its channel is taken for an extension calling, and the line dialled is unknown...
    trunk = "PJSIP/74950001122-0000001a"
    facts = """SELECT c.direction, c.dialled, l.caller, l.caller_is_extension FROM cti.call c
                 JOIN cti.call_leg l ON l.call_id = c.id AND l.leg_uuid = c.pbx_call_id"""
    conn.execute("UPDATE cti.config SET ami_trunk_contexts = '{}'")
    with conn.transaction(force_rollback=True):
        insert_frames(conn, freepbx_queue_call(trunk), source="asterisk")
        assert [row[1:] for row in conn.execute(facts)] == [(None, "74950001122", True)]
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


def click_to_call_through_local(customer: str = "89161234567") -> list[str]:
    """Click-to-call as FreePBX and many CRMs do it: AMI Originate with Channel
    Local/101@from-internal, Exten the customer's number and CallerID the customer's (so
    the phone shows whom it calls). Local/;2 rings phone 101; once 101 answers, Local/;1
    goes on in the dialplan and dials the customer through the trunk."""
    lid = "1700000300.90"
    l1 = chan("Local/101@from-internal-00000040;1", lid, customer, "101", "from-internal", 0, lid)
    l2 = chan(
        "Local/101@from-internal-00000040;2",
        "1700000300.91",
        customer,
        "101",
        "from-internal",
        0,
        lid,
    )
    ph = chan("PJSIP/101-00000041", "1700000300.92", "<unknown>", "s", "from-internal", 0, lid)
    tr = chan("PJSIP/mts-00000042", "1700000300.93", "<unknown>", "s", "from-internal", 0, lid)
    ph_up = {
        **ph,
        "ChannelState": 6,
        "ChannelStateDesc": "Up",
        "CallerIDNum": "101",
        "ConnectedLineNum": customer,
    }
    l1_out = {**l1, "ChannelState": 6, "ChannelStateDesc": "Up", "Exten": customer}
    tr_up = {**tr, "ChannelState": 6, "ChannelStateDesc": "Up", "CallerIDNum": customer}
    return [
        block("Newchannel", l1),
        block("Newchannel", l2),
        block("Newchannel", ph),
        block("DialBegin", {**l2, **dest(ph), "DialString": "101"}),
        block("Newstate", {**ph, "ChannelState": 5, "ChannelStateDesc": "Ringing"}),
        block("Newstate", ph_up),
        block("DialEnd", {**l2, **dest(ph_up), "DialStatus": "ANSWER"}),
        block("BridgeEnter", {**bridge("b-agent", 1), **l2}),
        block("BridgeEnter", {**bridge("b-agent", 2), **ph_up}),
        block("Newstate", {**l1, "ChannelState": 6, "ChannelStateDesc": "Up"}),
        block("Newexten", {**l1_out, "Application": "Dial", "AppData": f"PJSIP/{customer}@mts"}),
        block("Newchannel", tr),
        block("DialBegin", {**l1_out, **dest(tr), "DialString": f"{customer}@mts"}),
        block(
            "Newstate",
            {**tr, "ChannelState": 5, "ChannelStateDesc": "Ringing", "CallerIDNum": customer},
        ),
        block("Newstate", tr_up),
        block("DialEnd", {**l1_out, **dest(tr_up), "DialStatus": "ANSWER"}),
        block("BridgeEnter", {**bridge("b-customer", 1), **l1_out}),
        block("BridgeEnter", {**bridge("b-customer", 2), **tr_up}),
        block("BridgeLeave", {**bridge("b-customer", 1), **tr_up}),
        block("Hangup", {**tr_up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-customer", 0), **l1_out}),
        block("Hangup", {**l1_out, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-agent", 1), **l2}),
        block("Hangup", {**l2, "Cause": 16, "Cause-txt": "Normal Clearing"}),
        block("BridgeLeave", {**bridge("b-agent", 0), **ph_up}),
        block("Hangup", {**ph_up, "Cause": 16, "Cause-txt": "Normal Clearing"}),
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
        ("SIP/9170-12-0000003c", None),  # a peer that is not all digits
        ("Local/101@from-queue-00000005;2", None),  # a wire, not a leg
        ("PJSIP/101", None),  # not a channel name (no sequence number)
        ("DAHDI/i1/74951234567-1", None),  # an ISDN line
    ],
)
def test_the_default_extension_of_a_channel(conn, channel, extension):
    assert conn.execute("SELECT cti.ami_extension(%s, NULL)", [channel]).fetchone()[0] == extension
