"""Calls the simulated onlinePBX places on request (click-to-call: the HTTP API's call/now,
or API 2.0's `make_call` on the socket): each request counted by (from, to), refused with a
comment when one is set, else played on the simulator's socket: the desk's extension rings
and answers first, then the number."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from ingester.simulator import onlinepbx2_calls, onlinepbx3_calls
from ingester.simulator.onlinepbx3_calls import CallBuilder


class PlacedCalls:
    def __init__(self, pbx, domain: str) -> None:
        self.pbx, self.domain = pbx, domain
        self.requests: Counter[tuple[str, str]] = Counter()  # by (from, to)
        self.refuse = ""  # a comment: every request is refused with it
        self._playing: set[asyncio.Task] = set()

    def place(self, extension: str, number: str) -> str | None:
        """Take one request; the refusal's comment, or None once the call is on its way."""
        self.requests[(extension, number)] += 1
        if self.refuse:
            return self.refuse
        task = asyncio.create_task(self._play(extension, number))
        self._playing.add(task)
        task.add_done_callback(self._playing.discard)
        return None

    async def _play(self, extension: str, number: str) -> None:
        b = CallBuilder(random.Random(), clock=time.time(), domain=self.domain)
        frames = onlinepbx3_calls.outbound(b, extension, number)
        if self.pbx.name.startswith("onlinePBX 2.0"):
            frames = onlinepbx2_calls.from_onlinepbx3(frames)
        for frame in frames:
            await asyncio.sleep(0.02)
            await self.pbx.send(frame)
