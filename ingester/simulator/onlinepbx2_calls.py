"""onlinePBX API 2.0 events for the same calls: derived from the 3.0 frames of a scenario.

2.0 has no call-wide id and no call_end: legs are correlated through the bridge's
aleg_uuid/bleg_uuid, and who answered shows as `blf` events of the extension.
Each event is the JSON a socket.io 0.9 packet `5:::` carries: {"name": ..., "args": [data]}.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def is_extension(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return 0 < len(digits) <= 5


def from_onlinepbx3(frames: list[dict]) -> list[Event]:
    return [event for _, event in from_onlinepbx3_timed([0.0] * len(frames), frames)]


def from_onlinepbx3_timed(times: list[float], frames: list[dict]) -> list[tuple[float, Event]]:
    """The 2.0 events of a call, each at the time of the 3.0 frame it comes from."""
    legs: dict[str, dict] = {}
    events: list[tuple[float, Event]] = []
    clock = [0.0]  # the time of the 3.0 frame being translated

    def emit(name: str, **data: Any) -> None:
        events.append((clock[0], {"name": name, "args": [data]}))

    for at, frame in zip(times, frames, strict=True):
        clock[0] = at
        name, data = frame["event"], frame["data"]
        leg = legs.get(data.get("uuid", ""), {})
        if name == "channel_create":
            legs[data["uuid"]] = leg = data
            emit(
                "channel_create",
                uuid=data["uuid"],
                direction=data["direction"],
                created_stamp=data["created_stamp"],
                state="CS_INIT",
                domain=data["domain"],
                caller_number=data["caller_number"],
                caller_name=data["caller_name"],
                destination_number=data["destination_number"],
                destination_host=data["destination_host"],
                gate="",
                diversion="",
            )
            if is_extension(data["destination_number"]):
                emit(
                    "blf",
                    uid=data["destination_number"],
                    status="ringing",
                    direction=data["direction"],
                    other_leg=data["caller_number"],
                    uuid=data["uuid"],
                    timestamp=data["created_stamp"],
                )
        elif name == "channel_answer":
            emit(
                "channel_answer",
                uuid=data["uuid"],
                direction=leg.get("direction", ""),
                caller_number=leg.get("caller_number", ""),
                destination_number=leg.get("destination_number", ""),
                timestamp=data["answered_stamp"],
            )
            if is_extension(leg.get("destination_number", "")):
                emit(
                    "blf",
                    uid=leg["destination_number"],
                    status="answered",
                    direction=leg["direction"],
                    other_leg=leg["caller_number"],
                    uuid=data["uuid"],
                    timestamp=data["answered_stamp"],
                )
        elif name == "channel_bridge":
            emit(
                "channel_bridge",
                direction="inbound",
                aleg_uuid=data["uuids"][0],
                bleg_uuid=data["uuids"][1],
            )
        elif name in ("channel_hold", "channel_unhold"):
            emit(name, uuid=data["uuid"])
        elif name == "channel_destroy":
            emit(
                "channel_destroy",
                uuid=data["uuid"],
                direction=data["direction"],
                created_stamp=data["created_stamp"],
                state="CS_DESTROY",
                hangup_cause=data["hangup_cause"],
            )
            if is_extension(leg.get("destination_number", "")):
                emit(
                    "blf",
                    uid=leg["destination_number"],
                    status="hangup",
                    direction=leg["direction"],
                    other_leg=leg["caller_number"],
                    uuid=data["uuid"],
                    timestamp=data["created_stamp"],
                )
        # call_end: 2.0 has none; the call ends when its last leg does.
    return events
