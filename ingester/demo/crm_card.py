"""The demo CRM's client card: the page a desk's "Open in the CRM" link opens in the demo.

A real CRM has its own card page and gives `pgcti gateway --card-url` its address; the
demo's reference CRM has none, so the demo serves this one, read-only, on loopback: the
client as the CRM holds them and their latest calls from pgcti's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from collections.abc import Iterator

import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ingester.clients.gateway_process import free_port
from ingester.queries import query


def app(dsn: str) -> Starlette:
    async def card(request) -> HTMLResponse:
        client_id = request.path_params["client_id"]
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            found = await (await conn.execute(query("demo_crm_client"), [client_id])).fetchone()
            calls = await (
                await conn.execute(query("demo_crm_client_calls"), [client_id])
            ).fetchall()
        if found is None:
            return HTMLResponse(_page("No such client", f"<p>No client {client_id}.</p>"), 404)
        name, company, manager, extension, is_lead, created, phones = found
        facts = [
            ("company", company or "-"),
            ("manager", f"{manager} ({extension})" if manager else "-"),
            ("phones", phones or "-"),
            (
                "in the CRM since",
                f"{created:%Y-%m-%d}" + (" (a lead pgcti registered)" if is_lead else ""),
            ),
        ]
        rows = "".join(
            f"<tr><td>{started:%Y-%m-%d %H:%M}</td><td>{html.escape(direction)}</td>"
            f"<td>{html.escape(outcome)}</td><td>{html.escape(by)}</td><td>{'' if took is None else str(took).split('.')[0]}</td></tr>"
            for started, direction, outcome, by, took in calls
        )
        body = (
            "<dl>"
            + "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
            + "</dl><h2>Latest calls</h2><table><tr><th>started (UTC)</th><th>direction</th>"
            f"<th>outcome</th><th>answered by</th><th>duration</th></tr>{rows}</table>"
        )
        return HTMLResponse(_page(name, body))

    return Starlette(routes=[Route("/clients/{client_id:int}", card)])


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        "</title><style>body{font-family:sans-serif;margin:2em} td,th{border:1px solid #ccc;"
        "padding:.2em .6em} table{border-collapse:collapse} dt{font-weight:bold}</style></head>"
        f"<body><p>demo CRM (pgcti's reference CRM)</p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class CardServer(uvicorn.Server):
    """uvicorn in the demo's own event loop; Ctrl-C stays the demo's (uvicorn would take it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def start(self) -> str:
        """Serve on the configured port; returns the card URL template."""
        self._task = asyncio.create_task(self.serve())
        while not self.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.05)
        return f"http://127.0.0.1:{self.config.port}/clients/{{client_id}}"

    async def stop(self) -> None:
        self.should_exit = True
        await self._task


def card_server(dsn: str) -> CardServer:
    return CardServer(
        uvicorn.Config(app(dsn), host="127.0.0.1", port=free_port(), log_level="warning")
    )
