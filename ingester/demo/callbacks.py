"""The demo's desks call back: every few seconds the owner of an open callback task presses
Call on it (cti.dial_v1 with the desk's own login), `pgcti ingest --dial` places it on the
simulated PBX, and the board follows each request until it is answered or says why not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg

from ingester.database import with_user
from ingester.demo.seed import workstation_login
from ingester.queries import query

FINAL = ("answered", "failed", "expired", "unknown")


async def call_back(dsn: str, show: Callable[[str], None], every: float = 12.0) -> None:
    tried: list[int] = []
    placed: dict[str, tuple[str, str, int]] = {}  # request id -> (desk, number, task)
    told: dict[str, str] = {}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while True:
            await asyncio.sleep(every)
            row = await (await conn.execute(query("demo_callback_to_place"), [tried])).fetchone()
            if row is not None:
                task, number, client_id, ws_id, desk = row
                tried.append(task)
                async with await psycopg.AsyncConnection.connect(
                    with_user(dsn, workstation_login(ws_id)), autocommit=True
                ) as desk_conn:  # the desk's own login: it dials from its own extension only
                    try:
                        cur = await desk_conn.execute(query("demo_dial"), [number, client_id])
                        (request,) = await cur.fetchone()
                        placed[str(request)] = (desk, number, task)
                    except psycopg.Error as exc:
                        show(
                            f"dial      -> {desk}: cannot call back {number}: {exc.diag.message_primary}"
                        )
            cur = await conn.execute(query("demo_dial_states"), [list(placed)])
            for request, state, reason in await cur.fetchall():
                if told.get(request) != state and state != "sent":  # asked, then the outcome
                    told[request] = state
                    desk, number, task = placed[request]
                    why = f" ({reason})" if reason and state != "answered" else ""
                    show(
                        f"dial      -> {desk} calls back {number} (task {task}) from the CRM: {state}{why}"
                    )
