"""Click-to-call's edge (`pgcti ingest --dial`): take each dial request once, send it to the PBX.

Order of a send, so that no request is sent twice (docs/operations.md#click-to-call-in-faults):
1. the database marks the request `sent` by this edge, committed (cti.dial_claim_v1), so no
   other edge takes it;
2. the id goes into the dial ledger, fsync'd, so this edge never sends it again, even when a
   failover hands it out again;
3. it goes to the PBX (AMI Originate on the logged-in session; onlinePBX's call/now, or
   `make_call` on API 2.0's subscribed socket).
What is known of the outcome goes into the raw log, where SQL decides the state: the AMI
answers and 2.0's `callback` themselves, or this edge's `dial_response` frame (not sent, or
the HTTP API's answer). A crash between 1 and 3 leaves the request `sent` with no answer:
the database marks it `unknown` after cti.config.dial_unknown_after, and it is never
dialled again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psycopg

from ingester.database import redact
from ingester.frame import Frame
from ingester.pipeline.dial_ledger import DialLedger
from ingester.pipeline.transports.ami_originate import DialPlan, NotDialable, dial_string, originate
from ingester.pipeline.transports.asterisk_ami import AmiLink, excerpt
from ingester.pipeline.transports.common import DIAL_ACTION_PREFIX, NotSent
from ingester.pipeline.transports.onlinepbx2 import Onlinepbx2Link
from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi, Refused, Unreachable
from ingester.queries import query

log = logging.getLogger("pgcti.dial")
DOORBELL = "cti_dial_v1"
CLAIM_AT_ONCE = 10
POLL_SECONDS = 2.0  # a doorbell can be missed (a reconnect); expiry needs no doorbell at all
NO_RIGHT_RETRY = 60.0
FOLLOW_UP_SECONDS = 150.0  # a placed call shows up within this (the unknown window: 2 min)


@dataclass(frozen=True)
class DialRequest:
    id: str
    extension: str
    number: str
    display_name: str | None


class Placer(Protocol):
    follow_up: bool  # True: ask the database to look for the calls placed, while any may come

    def ready(self) -> bool: ...

    async def place(self, request: DialRequest) -> tuple[bool, str] | None:
        """Send one request. Raises NotSent or NotDialable when nothing reached the PBX;
        returns the PBX's answer (accepted?, words), or None when its events will tell."""


class AmiPlacer:
    follow_up = False  # OriginateResponse settles each request as it comes

    def __init__(self, link: AmiLink, plan: DialPlan) -> None:
        self.link, self.plan = link, plan

    def ready(self) -> bool:
        return self.link.up.is_set()

    async def place(self, request: DialRequest) -> None:
        action = originate(
            self.plan, request.id, request.extension, request.number, request.display_name
        )
        await self.link.send(action)  # OriginateResponse, stored as an event, tells the rest
        return None


class OnlinepbxPlacer:
    follow_up = True  # the answer names no call: the database looks for it (dial_check)

    def __init__(self, api: OnlinepbxApi, plan: DialPlan) -> None:
        self.api, self.plan = api, plan

    def ready(self) -> bool:
        return True  # each request is an HTTP call of its own

    async def place(self, request: DialRequest) -> tuple[bool, str]:
        to = dial_string(self.plan, request.number)
        try:
            await self.api.call_now(request.extension, to)
        except Unreachable as exc:
            raise NotSent(str(exc)) from None
        except Refused as exc:
            return False, str(exc)
        return True, "accepted"


class Onlinepbx2SocketPlacer:
    """onlinePBX API 2.0's `make_call` on the subscribed socket. Its answer, a `callback`
    event with our hash, is stored as an event and read by SQL (54_dialing.sql); it names
    no call either, so the call is found by number and time as for call/now."""

    follow_up = True

    def __init__(self, link: Onlinepbx2Link, plan: DialPlan) -> None:
        self.link, self.plan = link, plan

    def ready(self) -> bool:
        return self.link.up.is_set()

    async def place(self, request: DialRequest) -> None:
        command = {
            "from": request.extension,
            "to": dial_string(self.plan, request.number),
            "callback_hash": f"{DIAL_ACTION_PREFIX}{request.id}",
        }
        await self.link.send("make_call", command)
        return None


def edge_name() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


class Dialer:
    def __init__(
        self,
        dsn: str,
        placer: Placer,
        ledger: DialLedger,
        submit: Callable[[Frame], None],
        edge: str | None = None,
    ) -> None:
        self.dsn, self.placer, self.ledger, self.submit = dsn, placer, ledger, submit
        self.edge = edge or edge_name()
        self.sent = 0
        self.last_sent = -FOLLOW_UP_SECONDS

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, connect_timeout=5
                ) as conn:
                    await conn.execute(f"LISTEN {DOORBELL}")
                    log.info("click-to-call: taking dial requests as %s", self.edge)
                    delay = 0.5
                    await self._serve(conn)
            except psycopg.errors.InsufficientPrivilege as exc:
                log.error(
                    "click-to-call: the database refuses this login dial requests: %s (%s); "
                    "see docs/dba-guide.md#click-to-call; trying again in %.0f s",
                    exc.diag.message_primary,
                    exc.diag.message_hint
                    or "a DBA runs GRANT cti_dialer TO <the ingester's login>",
                    NO_RIGHT_RETRY,
                )
                await asyncio.sleep(NO_RIGHT_RETRY)
            except (psycopg.OperationalError, OSError) as exc:
                log.warning(
                    "click-to-call: the database %s cannot be reached (%s); retrying",
                    redact(self.dsn),
                    excerpt(str(exc).strip()),
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 15.0)

    async def _serve(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            taken = 0
            if self.placer.ready():
                cur = await conn.execute(
                    query("claim_dial_requests"), {"edge": self.edge, "limit": CLAIM_AT_ONCE}
                )
                claimed = [DialRequest(str(r[0]), r[1], r[2], r[3]) for r in await cur.fetchall()]
                for request in claimed:
                    await self._send(request)
                taken = len(claimed)
            if self.placer.follow_up and time.monotonic() - self.last_sent < FOLLOW_UP_SECONDS:
                self._submit_event({"event": "dial_check"})  # settles the requests whose call came
            if taken < CLAIM_AT_ONCE:  # more may wait: claim again at once
                async for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                    pass

    async def _send(self, request: DialRequest) -> None:
        if request.id in self.ledger:
            log.warning(
                "dial request %s handed out again (a failover lost its claim?): this edge "
                "sent it already, and does not send it twice",
                request.id,
            )
            return
        if not self.placer.ready():
            self._report(request, sent=False, reason="the PBX link went down before it was sent")
            return
        try:
            self.ledger.record(request.id)
        except OSError as exc:
            self._report(
                request, sent=False, reason=f"the dial ledger cannot be written ({exc.strerror})"
            )
            return
        try:
            answer = await self.placer.place(request)
        except (NotSent, NotDialable) as exc:
            self._report(request, sent=False, reason=str(exc))
            return
        except Exception as exc:  # it may have gone: the database will say unknown, not resend
            log.error(
                "dial request %s: sending it failed midway (%s): whether the PBX got it is "
                "unknown; it is not sent again",
                request.id,
                excerpt(str(exc)),
            )
            return
        self.sent += 1
        self.last_sent = time.monotonic()
        log.info("dial request %s sent: extension %s rings first", request.id, request.extension)
        if answer is not None:
            ok, words = answer
            self._report(request, sent=True, ok=ok, reason=words)

    def _report(
        self, request: DialRequest, sent: bool, reason: str, ok: bool | None = None
    ) -> None:
        if not sent or ok is False:
            log.warning("dial request %s not placed: %s", request.id, reason)
        body: dict = {
            "event": "dial_response",
            "request": request.id,
            "sent": sent,
            "reason": reason,
        }
        if ok is not None:
            body["ok"] = ok
        self._submit_event(body)

    def _submit_event(self, body: dict) -> None:
        """A `pgcti` frame into the raw log, where SQL decides what it means."""
        now = datetime.now(UTC)
        self.submit(Frame("pgcti", now, json.dumps({**body, "at": now.isoformat()})))
