"""What Asterisk sends for a click-to-call Originate through a Local/ channel (as FreePBX and
pgcti's `--dial` place them): the action's answer, the call's events, and OriginateResponse.

Local/<ext>@<context>;2 rings the desk's phone; once it answers, ;1 goes on in the dialplan
and dials the customer through the trunk. ;1's Uniqueid is the Originate's ChannelId, so it
is the call's Linkedid. OriginateResponse comes when the desk answers (Success, Reason 4)
or gives up (Failure: Reason 3, no answer). Written from the Asterisk documentation of each
event (main/manager.c's OriginateResponse), like asterisk_calls.py.
"""

from __future__ import annotations

import itertools

from ingester.simulator.asterisk_calls import block

STATES = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
# Asterisk numbers channels with one counter for the process: names never repeat in a run
# (a Local/ wire's two ends are found by their shared name).
_CHANNEL_NUMBERS = itertools.count(0x40)
CLEARING = {"Cause": 16, "Cause-txt": "Normal Clearing"}


def chan(
    name: str,
    uniqueid: str,
    cid: str,
    exten: str,
    context: str,
    state: int = 6,
    linkedid: str = "1700000100.40",
) -> dict:
    """A channel's fields, as every channel event carries them."""
    return {
        "Channel": name,
        "ChannelState": state,
        "ChannelStateDesc": STATES[state],
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


def queued(action_id: str) -> str:
    """Async Originate's immediate answer: only that it is queued."""
    return "\r\n".join(
        ["Response: Success", f"ActionID: {action_id}", "Message: Originate successfully queued"]
    )


def originate_response(action_id: str, request: dict, channel: str, success: bool) -> str:
    return block(
        "OriginateResponse",
        {
            "ActionID": action_id,
            "Response": "Success" if success else "Failure",
            "Channel": channel,
            "Context": request.get("context", ""),
            "Exten": request.get("exten", ""),
            "Reason": 4 if success else 3,
            "Uniqueid": request.get("channelid", "<unknown>"),
            "CallerIDNum": "<unknown>",
            "CallerIDName": "<unknown>",
        },
    )


def click_to_call(
    lid: str,
    extension: str,
    customer: str,
    next_uniqueid: str = "1700000300.91",
    context: str = "from-internal",
    desk_answers: bool = True,
) -> list[str]:
    """The call's blocks: the desk rings (and answers, or not), then the customer answers and
    hangs up. next_uniqueid: the first of the ids Asterisk gives the other channels."""
    base, seq = next_uniqueid.rsplit(".", 1)
    ids = [f"{base}.{int(seq) + i}" for i in range(3)]
    tag = f"{next(_CHANNEL_NUMBERS):08x}"
    local = f"Local/{extension}@{context}-{tag}"
    l1 = chan(f"{local};1", lid, customer, extension, context, 0, lid)
    l2 = chan(f"{local};2", ids[0], customer, extension, context, 0, lid)
    ph = chan(f"PJSIP/{extension}-{tag}", ids[1], "<unknown>", "s", context, 0, lid)
    if not desk_answers:
        ringing = {**ph, "ChannelState": 5, "ChannelStateDesc": "Ringing"}
        return [
            block("Newchannel", l1),
            block("Newchannel", l2),
            block("Newchannel", ph),
            block("DialBegin", {**l2, **dest(ph), "DialString": extension}),
            block("Newstate", ringing),
            block("DialEnd", {**l2, **dest(ringing), "DialStatus": "NOANSWER"}),
            block("Hangup", {**ringing, "Cause": 19, "Cause-txt": "User alerting, no answer"}),
            block("Hangup", {**l2, **CLEARING}),
            block("Hangup", {**l1, **CLEARING}),
        ]
    tr = chan(f"PJSIP/mts-{tag}", ids[2], "<unknown>", "s", context, 0, lid)
    ph_up = {
        **ph,
        "ChannelState": 6,
        "ChannelStateDesc": "Up",
        "CallerIDNum": extension,
        "ConnectedLineNum": customer,
    }
    l1_out = {**l1, "ChannelState": 6, "ChannelStateDesc": "Up", "Exten": customer}
    tr_up = {**tr, "ChannelState": 6, "ChannelStateDesc": "Up", "CallerIDNum": customer}
    agent, talk = f"b-agent-{lid}", f"b-customer-{lid}"
    return [
        block("Newchannel", l1),
        block("Newchannel", l2),
        block("Newchannel", ph),
        block("DialBegin", {**l2, **dest(ph), "DialString": extension}),
        block("Newstate", {**ph, "ChannelState": 5, "ChannelStateDesc": "Ringing"}),
        block("Newstate", ph_up),
        block("DialEnd", {**l2, **dest(ph_up), "DialStatus": "ANSWER"}),
        block("BridgeEnter", {**bridge(agent, 1), **l2}),
        block("BridgeEnter", {**bridge(agent, 2), **ph_up}),
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
        block("BridgeEnter", {**bridge(talk, 1), **l1_out}),
        block("BridgeEnter", {**bridge(talk, 2), **tr_up}),
        block("BridgeLeave", {**bridge(talk, 1), **tr_up}),
        block("Hangup", {**tr_up, **CLEARING}),
        block("BridgeLeave", {**bridge(talk, 0), **l1_out}),
        block("Hangup", {**l1_out, **CLEARING}),
        block("BridgeLeave", {**bridge(agent, 1), **l2}),
        block("Hangup", {**l2, **CLEARING}),
        block("BridgeLeave", {**bridge(agent, 0), **ph_up}),
        block("Hangup", {**ph_up, **CLEARING}),
    ]
