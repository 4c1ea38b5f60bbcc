"""Asterisk 18-22 AMI traces of our own, written from the Asterisk documentation of each
event (PJSIP channels, as FreePBX and plain Asterisk send them), for the calls the twin
scenarios (ingester/simulator/asterisk_calls.py) do not tell: Local/ channels kept and
optimised away, and click-to-call through AMI Originate. Each is a list of blocks."""

from __future__ import annotations

from ingester.simulator.asterisk_calls import block
from ingester.simulator.asterisk_originate import bridge, chan, click_to_call, dest

__all__ = [
    "bridge",
    "chan",
    "dest",
]  # the traces' building blocks, for the tests that write their own


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


def click_to_call_through_local(
    customer: str = "89161234567", lid: str = "1700000300.90"
) -> list[str]:
    """Click-to-call as FreePBX and many CRMs do it (ingester/simulator/asterisk_originate.py):
    desk 101 rings through Local/101@from-internal, answers, and the customer answers."""
    return click_to_call(lid, "101", customer)
