"""onlinePBX API 3.0 frames for whole calls, leg by leg, as the PBX sends them.

One `CallBuilder` per call; scenario functions drive it. Legs follow FreeSWITCH:
the customer's leg (caller -> line), one leg per extension that rings, bridges
between legs, hangup causes on each leg, then `call_end`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

Frame = dict[str, Any]


@dataclass
class CallBuilder:
    rng: random.Random
    clock: float
    domain: str = "demo.onpbx.ru"
    call_uuid: str = ""
    scale: float = 1.0  # real seconds per PBX second: the simulator compresses calls
    frames: list[Frame] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each frame happens (the clock at emit)

    def __post_init__(self) -> None:
        self.call_uuid = self.call_uuid or self._uuid()

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def tick(self, seconds: float) -> None:
        self.clock += seconds * self.scale

    def _emit(self, event: str, **data: Any) -> None:
        self.frames.append({"event": event, "data": {**data, "call_uuid": self.call_uuid}})
        self.times.append(self.clock)

    def leg(self, caller: str, destination: str, direction: str = "inbound") -> str:
        leg = self._uuid()
        self._emit(
            "channel_create",
            uuid=leg,
            direction=direction,
            created_stamp=int(self.clock),
            state="CS_INIT",
            domain=self.domain,
            caller_number=caller,
            caller_name="",
            destination_number=destination,
            destination_host=self.domain,
            gateway_id="",
            gateway_number="",
            origin="",
        )
        return leg

    def answer(self, leg: str) -> None:
        self._emit("channel_answer", uuid=leg, answered_stamp=int(self.clock), read_codec="PCMA")

    def bridge(self, a: str, b: str) -> None:
        self._emit("channel_bridge", uuids=[a, b], direction="inbound")

    def unbridge(self, a: str, b: str) -> None:
        self._emit("channel_unbridge", uuids=[a, b], direction="inbound")

    def hold(self, leg: str) -> None:
        self._emit("channel_hold", uuid=leg)

    def unhold(self, leg: str) -> None:
        self._emit("channel_unhold", uuid=leg)

    def destroy(self, leg: str, cause: str = "NORMAL_CLEARING") -> None:
        self._emit(
            "channel_destroy",
            uuid=leg,
            direction="inbound",
            created_stamp=int(self.clock),
            state="CS_DESTROY",
            hangup_cause=cause,
        )

    def end(self, caller: str, destination: str, kind: str, cause: str = "NORMAL_CLEARING") -> None:
        self.frames.append(
            {
                "event": "call_end",
                "data": {
                    "uuid": self.call_uuid,
                    "caller_number": caller,
                    "destination_number": destination,
                    "end_stamp": int(self.clock),
                    "hangup_cause": cause,
                    "type": kind,
                },
            }
        )
        self.times.append(self.clock)


# Scenarios: each returns the builder's frames. `customer` is the number as the PBX
# writes it, `line` the number dialled, extensions are strings like "101".


def inbound_answered(
    b: CallBuilder, customer: str, line: str, ext: str, talk: float = 30, ring: float = 3
) -> list[Frame]:
    a = b.leg(customer, line)
    b.tick(1)
    x = b.leg(customer, ext, "outbound")
    b.tick(ring)
    b.answer(x)
    b.bridge(a, x)
    b.tick(talk)
    b.destroy(x)
    b.destroy(a)
    b.end(customer, line, "inbound")
    return b.frames


def inbound_unanswered(
    b: CallBuilder, customer: str, line: str, exts: list[str], cause: str
) -> list[Frame]:
    """cause NO_ANSWER: missed; ORIGINATOR_CANCEL: abandoned; USER_BUSY: busy."""
    a = b.leg(customer, line)
    legs = [b.leg(customer, ext, "outbound") for ext in exts]
    b.tick(20 if cause == "NO_ANSWER" else 6)
    for x in legs:
        b.destroy(x, cause)
    b.destroy(a, "NORMAL_CLEARING" if cause != "USER_BUSY" else cause)
    b.end(customer, line, "inbound", cause)
    return b.frames


def ring_all(
    b: CallBuilder, customer: str, line: str, exts: list[str], winner: str, ring: float = 4
) -> list[Frame]:
    a = b.leg(customer, line)
    legs = {ext: b.leg(customer, ext, "outbound") for ext in exts}
    b.tick(ring)
    b.answer(legs[winner])
    b.bridge(a, legs[winner])
    for ext, x in legs.items():
        if ext != winner:
            b.destroy(x, "LOSE_RACE")
    b.tick(40)
    b.destroy(legs[winner])
    b.destroy(a)
    b.end(customer, line, "inbound")
    return b.frames


def blind_transfer_chain(b: CallBuilder, customer: str, line: str, exts: list[str]) -> list[Frame]:
    """Answered by exts[0], then blind-transferred along the chain: 101 -> 102 -> 103."""
    a = b.leg(customer, line)
    current = b.leg(customer, exts[0], "outbound")
    b.tick(3)
    b.answer(current)
    b.bridge(a, current)
    for ext in exts[1:]:
        b.tick(20)
        nxt = b.leg(customer, ext, "outbound")
        b.unbridge(a, current)  # the PBX parts them as the transfer starts
        b.destroy(current, "BLIND_TRANSFER")
        b.tick(3)
        b.answer(nxt)
        b.bridge(a, nxt)
        current = nxt
    b.tick(30)
    b.destroy(current)
    b.destroy(a)
    b.end(customer, line, "inbound")
    return b.frames


def attended_transfer(
    b: CallBuilder, customer: str, line: str, first: str, second: str
) -> list[Frame]:
    """first answers, holds the customer, consults second, then joins them and leaves."""
    a = b.leg(customer, line)
    x = b.leg(customer, first, "outbound")
    b.tick(3)
    b.answer(x)
    b.bridge(a, x)
    b.tick(15)
    b.hold(a)
    consult = b.leg(first, second)  # first's phone dials second
    y = b.leg(first, second, "outbound")  # second's phone rings
    b.tick(3)
    b.answer(y)
    b.bridge(consult, y)
    b.tick(10)
    b.bridge(a, y)  # the transfer completes
    b.unhold(a)
    b.destroy(consult, "ATTENDED_TRANSFER")
    b.destroy(x, "ATTENDED_TRANSFER")
    b.tick(40)
    b.destroy(y)
    b.destroy(a)
    b.end(customer, line, "inbound")
    return b.frames


def inbound_with_hold(b: CallBuilder, customer: str, line: str, ext: str) -> list[Frame]:
    a = b.leg(customer, line)
    x = b.leg(customer, ext, "outbound")
    b.tick(2)
    b.answer(x)
    b.bridge(a, x)
    b.tick(10)
    b.hold(a)
    b.tick(20)
    b.unhold(a)
    b.tick(10)
    b.destroy(x)
    b.destroy(a)
    b.end(customer, line, "inbound")
    return b.frames


def outbound(b: CallBuilder, ext: str, number: str, answered: bool = True) -> list[Frame]:
    a = b.leg(ext, number)
    g = b.leg(ext, number, "outbound")
    b.tick(8)
    if answered:
        b.answer(g)
        b.bridge(a, g)
        b.tick(60)
    b.destroy(g, "NORMAL_CLEARING" if answered else "NO_ANSWER")
    b.destroy(a)
    b.end(ext, number, "outbound")
    return b.frames


def internal(b: CallBuilder, caller: str, callee: str) -> list[Frame]:
    a = b.leg(caller, callee)
    x = b.leg(caller, callee, "outbound")
    b.tick(2)
    b.answer(x)
    b.bridge(a, x)
    b.tick(25)
    b.destroy(x)
    b.destroy(a)
    b.end(caller, callee, "local")
    return b.frames
