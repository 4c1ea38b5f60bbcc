"""Realistic call traffic from a seed: which scenario, which number, which extensions.

The same seed gives the same calls (uuids, numbers, scenarios, order); time stamps
follow the clock the traffic is played at.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from ingester.simulator import asterisk_calls
from ingester.simulator import onlinepbx3_calls as calls
from ingester.simulator.onlinepbx2_calls import from_onlinepbx3_timed

# Scenario -> weight in the mix.
MIX = {
    "answered": 34,
    "missed": 8,
    "abandoned": 7,
    "busy": 4,
    "ring_all": 10,
    "blind_transfer": 8,
    "attended_transfer": 6,
    "transfer_chain": 4,
    "hold": 6,
    "outbound": 9,
    "internal": 4,
}


def ring_seconds(start: float) -> float:
    """How long a phone rings before someone answers: most within 5-10 s, a few near a
    minute (log-normal, median 7 s). Drawn from the call's start, so that the traffic's own
    random sequence, and every seeded run, stays as it was."""
    return min(55.0, random.Random(start).lognormvariate(math.log(7), 0.55))


def messy(e164: str, rng: random.Random) -> str:
    """A Russian E.164 number spelled the many ways people and PBXs write it."""
    if not e164.startswith("+7") or len(e164) != 12:
        return e164
    n = e164[2:]
    spellings = [
        f"+7{n}",
        f"7{n}",
        f"8{n}",
        f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
        f"+7 {n[:3]} {n[3:]}",
        f"8-{n[:3]}-{n[3:6]}-{n[6:8]}-{n[8:]}",
        f" {n} ",
    ]
    return rng.choice(spellings)


def random_russian_number(rng: random.Random) -> str:
    return f"+7{rng.choice(['495', '499', '812', '903', '916', '926', '985'])}{rng.randrange(10**7):07d}"


@dataclass
class Traffic:
    seed: int | str  # random.Random's: the same seed, the same calls
    known_numbers: list[str]  # as the CRM stores them (messy already)
    extensions: list[str]  # the extensions that take calls
    line: str = "74950001122"
    unknown_share: float = 0.3
    scale: float = 0.1
    protocol: str = (
        "onlinepbx3"  # or "onlinepbx2", "asterisk": the same calls as 2.0 events, AMI blocks
    )

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.count = 0
        self.accepting = True  # False: no new calls; the ones under way play to their end

    def customer(self) -> str:
        if self.known_numbers and self.rng.random() >= self.unknown_share:
            return self.rng.choice(self.known_numbers)
        return messy(random_russian_number(self.rng), self.rng)

    def call(self, start: float) -> list[tuple[float, calls.Frame]]:
        """One call's frames with the time each is due, starting at `start`."""
        rng = self.rng
        self.count += 1
        scenario = rng.choices(list(MIX), weights=list(MIX.values()))[0]
        b = calls.CallBuilder(random.Random(rng.getrandbits(64)), clock=start, scale=self.scale)
        customer, line = self.customer(), self.line
        ext = rng.choice(self.extensions)
        others = rng.sample(self.extensions, k=min(3, len(self.extensions)))
        match scenario:
            case "answered":
                talk = rng.uniform(10, 90)
                calls.inbound_answered(b, customer, line, ext, talk=talk, ring=ring_seconds(start))
            case "missed":
                calls.inbound_unanswered(b, customer, line, others[:2], "NO_ANSWER")
            case "abandoned":
                calls.inbound_unanswered(b, customer, line, others[:2], "ORIGINATOR_CANCEL")
            case "busy":
                calls.inbound_unanswered(b, customer, line, [ext], "USER_BUSY")
            case "ring_all":
                winner = rng.choice(others)
                calls.ring_all(b, customer, line, others, winner=winner, ring=ring_seconds(start))
            case "blind_transfer":
                calls.blind_transfer_chain(b, customer, line, others[:2])
            case "attended_transfer":
                calls.attended_transfer(b, customer, line, others[0], others[1])
            case "transfer_chain":
                calls.blind_transfer_chain(b, customer, line, others)
            case "hold":
                calls.inbound_with_hold(b, customer, line, ext)
            case "outbound":
                calls.outbound(b, ext, customer.strip(), answered=rng.random() < 0.7)
            case "internal":
                calls.internal(b, others[0], others[1])
        if self.protocol == "onlinepbx2":
            return from_onlinepbx3_timed(b.times, b.frames)
        if self.protocol == "asterisk":
            return asterisk_calls.from_onlinepbx3_timed(b.times, b.frames)
        return list(zip(b.times, b.frames, strict=True))

    def schedule(
        self, start: float, calls_per_second: float, total_calls: int | None
    ) -> Iterator[tuple[float, dict]]:
        """Every frame of an endless (or `total_calls` long) stream of overlapping calls, in due order."""
        pending: list[tuple[float, int, dict]] = []
        order = 0
        next_start = start
        made = 0
        while True:
            # Generate calls until the earliest pending frame is due before the next call starts.
            while (
                self.accepting
                and (total_calls is None or made < total_calls)
                and (not pending or pending[0][0] >= next_start)
            ):
                for due, frame in self.call(next_start):
                    heapq.heappush(pending, (due, order, frame))
                    order += 1
                made += 1
                next_start += self.rng.expovariate(calls_per_second)
            if not pending:
                return
            due, _, frame = heapq.heappop(pending)
            yield due, frame


def call_keys(frame: dict | str) -> list[str]:
    """The call and leg ids a frame names, to match it with what the database made of it:
    3.0 and 2.0 JSON (call_uuid, leg uuids), or an AMI block (Linkedid, Uniqueid)."""
    if isinstance(frame, str):
        fields = [line.partition(": ") for line in frame.split("\r\n")]
        calls = [v for k, _, v in fields if k.endswith("Linkedid") and v]  # the call first
        return calls + [v for k, _, v in fields if k.endswith("Uniqueid") and v]
    data = frame.get("data") or (frame.get("args") or [{}])[0]  # 3.0 or 2.0
    return [data[key] for key in ("call_uuid", "uuid", "aleg_uuid", "bleg_uuid") if data.get(key)]
