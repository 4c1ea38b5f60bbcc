"""Asterisk AMI event blocks for the same calls: derived from the 3.0 frames of a scenario.

What Asterisk 18-22 with PJSIP sends for them (AMI 2.0 event names and fields, as the
Asterisk documentation of each event gives them): a customer's call comes in on the trunk
(`PJSIP/mts-...`), extensions are PJSIP endpoints named after them (`PJSIP/101-...`).
The channel that starts a call gets a Newchannel whose Uniqueid is the call's Linkedid;
every channel it rings gets a Newchannel, a DialBegin and a DialEnd; bridges are
BridgeEnter/BridgeLeave; a consultation (an extension dialling while it holds a customer)
is a call of its own, joined to the customer's by the bridge that completes the transfer.
Each block is the `Key: Value` lines the wire carries, without the blank line after it.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from ingester.simulator.onlinepbx2_calls import is_extension

TRUNK = "mts"  # the trunk's PJSIP endpoint
CAUSES = {  # onlinePBX hangup cause -> (Q.850 code, Cause-txt)
    "NORMAL_CLEARING": (16, "Normal Clearing"),
    "USER_BUSY": (17, "User busy"),
    "NO_ANSWER": (19, "User alerting, no answer"),
    "ORIGINATOR_CANCEL": (16, "Normal Clearing"),
    "LOSE_RACE": (26, "Answered elsewhere"),
    "CALL_REJECTED": (21, "Call Rejected"),
}
DIAL_STATUS = {  # why a ringing leg stopped -> DialEnd's DialStatus
    "NO_ANSWER": "NOANSWER",
    "ORIGINATOR_CANCEL": "CANCEL",
    "LOSE_RACE": "CANCEL",
    "USER_BUSY": "BUSY",
    "CALL_REJECTED": "BUSY",
}
STATES = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


def block(event: str, fields: dict[str, Any]) -> str:
    lines = [f"Event: {event}", "Privilege: call,all"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    return "\r\n".join(lines)


def from_onlinepbx3(frames: list[dict]) -> list[str]:
    return [b for _, b in from_onlinepbx3_timed(None, frames)]


def from_onlinepbx3_timed(times: list[float] | None, frames: list[dict]) -> list[tuple[float, str]]:
    """The AMI blocks of a call, each at the time of the 3.0 frame it comes from. With
    times, each block carries them as `Timestamp` (manager.conf timestampevents = yes)."""
    return _Translation(times is not None).run(times or [0.0] * len(frames), frames)


class _Translation:
    def __init__(self, stamped: bool) -> None:
        self.stamped = stamped
        self.legs: dict[str, dict[str, Any]] = {}  # 3.0 leg uuid -> its channel
        self.originating: list[dict[str, Any]] = []  # channels that started a call, in order
        self.out: list[tuple[float, str]] = []
        self.clock = 0.0
        self.bridges = 0

    def run(self, times: list[float], frames: list[dict]) -> list[tuple[float, str]]:
        for at, frame in zip(times, frames, strict=True):
            self.clock = at
            data = frame["data"]
            match frame["event"]:
                case "channel_create":
                    self.create(data)
                case "channel_answer":
                    self.answer(self.legs[data["uuid"]])
                case "channel_bridge":
                    self.bridge([self.legs[u] for u in data["uuids"]])
                case "channel_hold" | "channel_unhold":
                    leg = self.legs[data["uuid"]]
                    self.emit(
                        "Hold" if frame["event"] == "channel_hold" else "Unhold", self.chan(leg)
                    )
                case "channel_destroy":
                    self.hangup(
                        self.legs[data["uuid"]], data.get("hangup_cause", "NORMAL_CLEARING")
                    )
                # call_end: AMI has none; the call ends when its last channel hangs up.
        return self.out

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        if self.stamped:
            fields = {"Timestamp": f"{self.clock:.6f}", **fields}
        self.out.append((self.clock, block(event, fields)))

    def chan(self, leg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        """A channel's standard fields, as every channel event carries them."""
        return {
            f"{prefix}Channel": leg["channel"],
            f"{prefix}ChannelState": leg["state"],
            f"{prefix}ChannelStateDesc": STATES[leg["state"]],
            f"{prefix}CallerIDNum": leg["cid"],
            f"{prefix}CallerIDName": "<unknown>",
            f"{prefix}ConnectedLineNum": leg["connected"],
            f"{prefix}ConnectedLineName": "<unknown>",
            f"{prefix}Language": "en",
            f"{prefix}AccountCode": "",
            f"{prefix}Context": leg["context"],
            f"{prefix}Exten": leg["exten"],
            f"{prefix}Priority": 1,
            f"{prefix}Uniqueid": leg["uniqueid"],
            f"{prefix}Linkedid": leg["linkedid"],
        }

    def create(self, data: dict[str, Any]) -> None:
        caller, destination = data["caller_number"], data["destination_number"]
        hexid = uuidlib.UUID(data["uuid"]).hex
        # Unique across calls (the 3.0 leg ids are), in Asterisk's "<epoch>.<sequence>" form.
        uniqueid = f"{int(data['created_stamp'])}.{int(hexid[:12], 16) % 10**9}"
        dialled = data["direction"] == "outbound"  # FreeSWITCH's B-leg: a channel being rung
        peer = (
            (destination if dialled else caller)
            if is_extension(destination if dialled else caller)
            else TRUNK
        )
        leg = {
            "channel": f"PJSIP/{peer}-{hexid[:8]}",
            "uniqueid": uniqueid,
            "state": 0,
            "answered": False,
            "bridge": None,
            "dialled": dialled,
        }
        if not dialled:
            leg |= {
                "linkedid": uniqueid,
                "cid": caller,
                "connected": "<unknown>",
                "context": "from-internal" if peer != TRUNK else "from-pstn",
                "exten": destination,
                "number": caller,
            }
            self.legs[data["uuid"]] = leg
            self.originating.append(leg)
            self.emit("Newchannel", self.chan(leg))
            leg["state"] = 4
            self.emit("Newstate", self.chan(leg))
            return
        # Rung by the latest channel that started a call from this caller (the customer's
        # on the trunk, or an extension's consultation).
        by = next(o for o in reversed(self.originating) if o["number"] == caller)
        leg |= {
            "linkedid": by["linkedid"],
            "cid": "<unknown>",
            "connected": "<unknown>",
            "context": "from-internal",
            "exten": "s",
            "by": by,
            "number": destination,
        }
        self.legs[data["uuid"]] = leg
        self.emit("Newchannel", self.chan(leg))
        leg |= {"cid": destination, "connected": caller}
        dial_string = destination if peer != TRUNK else f"{destination}@{TRUNK}"
        self.emit(
            "DialBegin", {**self.chan(by), **self.chan(leg, "Dest"), "DialString": dial_string}
        )
        leg["state"] = 5
        self.emit("Newstate", self.chan(leg))

    def answer(self, leg: dict[str, Any]) -> None:
        leg["state"], leg["answered"] = 6, True
        self.emit("Newstate", self.chan(leg))
        by = leg.get("by")
        if by is not None:
            self.emit(
                "DialEnd", {**self.chan(by), **self.chan(leg, "Dest"), "DialStatus": "ANSWER"}
            )
            if by["state"] != 6:
                by["state"] = 6
                self.emit("Newstate", self.chan(by))

    def bridge(self, legs: list[dict[str, Any]]) -> None:
        """Both channels leave the bridges they are in and meet in a new one."""
        for leg in legs:
            self.leave(leg)
        self.bridges += 1
        bridge_id = str(
            uuidlib.UUID(int=int(legs[0]["uniqueid"].replace(".", "")) * 1000 + self.bridges)
        )
        for n, leg in enumerate(legs, start=1):
            leg["bridge"] = bridge_id
            self.emit("BridgeEnter", {**self._bridge(bridge_id, n), **self.chan(leg)})

    def leave(self, leg: dict[str, Any]) -> None:
        if leg["bridge"] is not None:
            self.emit("BridgeLeave", {**self._bridge(leg["bridge"], 1), **self.chan(leg)})
            leg["bridge"] = None

    @staticmethod
    def _bridge(bridge_id: str, members: int) -> dict[str, Any]:
        return {
            "BridgeUniqueid": bridge_id,
            "BridgeType": "basic",
            "BridgeTechnology": "simple_bridge",
            "BridgeCreator": "<unknown>",
            "BridgeName": "<unknown>",
            "BridgeNumChannels": members,
            "BridgeVideoSourceMode": "none",
        }

    def hangup(self, leg: dict[str, Any], cause: str) -> None:
        by = leg.get("by")
        if by is not None and not leg["answered"]:
            status = DIAL_STATUS.get(cause, "CANCEL")
            self.emit("DialEnd", {**self.chan(by), **self.chan(leg, "Dest"), "DialStatus": status})
        if cause == "BLIND_TRANSFER" and leg["bridge"] is not None:
            self.emit(
                "BlindTransfer",
                {"Result": "Success", "IsExternal": "No", **self.chan(leg, "Transferer")},
            )
        if cause == "ATTENDED_TRANSFER" and not leg["dialled"]:
            self.emit(
                "AttendedTransfer",
                {"Result": "Success", "IsExternal": "No", **self.chan(leg, "SecondTransferer")},
            )
        self.leave(leg)
        code, text = CAUSES.get(cause, (16, "Normal Clearing"))
        self.emit("Hangup", {**self.chan(leg), "Cause": code, "Cause-txt": text})
