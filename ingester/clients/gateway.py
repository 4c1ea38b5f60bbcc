"""`pgcti gateway`: browsers get their desk's items over a WebSocket; the database sees
one listening connection for all of them.

A browser sends its token first. Every decision is the database's: the token is checked,
and items are pulled and acknowledged, by the gateway_* functions (db/logic/75_gateway.sql),
which are all the gateway's login may call. The gateway LISTENs on the token's channels
on its single listening connection and, on a doorbell, pulls the items after what it last
sent that browser. The protocol mirrors docs/crm-clients.md: catch up after the
acknowledged (or given) seq, then items as they come, acks from the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from starlette.applications import Starlette
from starlette.responses import (
    HTMLResponse,
    Response,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ingester.clients import gateway_desk_actions, gateway_http
from ingester.clients.gateway_guard import (
    ACCEPT_BURST,
    GUARD,
    MESSAGE_MAX_BYTES,
    GuardedProtocol,
    origin_allowed,
    quiet_accept_errors,
    raise_file_limit,
    read_hello,
)
from ingester.clients.recordings import RecordingsFolder
from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi
from ingester.queries import query

log = logging.getLogger("pgcti.gateway")
PAGE = Path(__file__).parent / "web" / "desk.html"
STREAMS = ("commands", "notifications")
PULL_EVERY = 1.0  # seconds between timed pulls, doorbell or not


@dataclass(eq=False)  # each browser is itself (hashable by identity)
class Browser:
    socket: WebSocket
    token: str
    sent: dict[str, int] = field(default_factory=dict)  # stream -> last seq sent
    channels: dict[str, str] = field(default_factory=dict)  # stream -> its doorbell channel
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """The listening connection, and a few connections for the gateway_* calls."""

    CALL_CONNECTIONS = 4  # pulls of different desks run side by side; the server sees 5

    def __init__(self, dsn: str, max_per_token: int) -> None:
        self.dsn, self.max_per_token = dsn, max_per_token
        self.by_channel: dict[str, set[Browser]] = defaultdict(set)
        self.per_token: dict[str, int] = defaultdict(int)
        self.to_listen: asyncio.Queue[str] = asyncio.Queue()
        self.acks_under_way: set[asyncio.Task] = set()  # held, so none is collected early
        self.idle: asyncio.Queue[psycopg.AsyncConnection | None] = asyncio.Queue()
        for _ in range(self.CALL_CONNECTIONS):
            self.idle.put_nowait(None)  # connected on first use

    async def call(self, name: str, *args) -> list[tuple]:
        """One gateway_* call. A pooled connection that broke while idle (the server
        restarted) is replaced and the call made again at once, on a fresh connection."""
        conn = await self.idle.get()
        try:
            for attempt in (1, 2):
                fresh = conn is None or conn.closed
                if fresh:
                    conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                try:
                    cur = await conn.execute(query(name), args)
                    return await cur.fetchall()
                except psycopg.OperationalError:
                    conn = None  # broken: a new one, now or next time
                    if fresh or attempt == 2:
                        raise
            raise AssertionError("unreachable")
        finally:
            self.idle.put_nowait(conn)

    async def tick_forever(self, seconds: float = PULL_EVERY) -> None:
        """Every browser pulls on a timer as well as on a doorbell: doorbells are skipped
        when the NOTIFY queue is nearly full (docs/crm-clients.md), pops must not be."""
        while True:
            await asyncio.sleep(seconds)
            for browsers in self.by_channel.values():
                for browser in browsers:
                    browser.wake.set()

    async def listen_forever(self) -> None:
        """Doorbells in, browsers woken; reconnects (and LISTENs again) after a drop."""
        listened: set[str] = set()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    for channel in listened | set(self.by_channel):
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    for browsers in self.by_channel.values():  # missed while we were away
                        for browser in browsers:
                            browser.wake.set()
                    while True:
                        while not self.to_listen.empty():
                            channel = self.to_listen.get_nowait()
                            if channel not in listened:
                                await conn.execute(
                                    sql.SQL("LISTEN {}").format(sql.Identifier(channel))
                                )
                                listened.add(channel)
                            for browser in self.by_channel.get(channel, ()):
                                browser.wake.set()  # what rang before the LISTEN took hold
                        async for note in conn.notifies(timeout=0.2):
                            for browser in self.by_channel.get(note.channel, ()):
                                browser.wake.set()
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("listening connection lost (%s); reconnecting", exc)
                await asyncio.sleep(1)

    async def serve(self, socket: WebSocket, allowed_origins: set[str], card_url: str) -> None:
        if not origin_allowed(socket.headers, allowed_origins):
            await socket.close(code=4403, reason="origin not allowed")
            return
        try:
            await socket.accept()
            hello = await read_hello(socket)
        except (WebSocketDisconnect, RuntimeError):
            return  # gone before its hello: nothing to say, nothing to log
        if hello is None:
            return
        token = hello["token"]
        if hello.get("wallboard"):
            await self._wallboard(socket, token)
            return
        try:
            streams = await self.call("gateway_whoami", token)
            desk = (await self.call("gateway_desk", token) or [(None, None, None)])[0]
        except psycopg.Error as exc:
            await _refuse(socket, exc)
            return
        GUARD.authenticated(socket.client and (socket.client.host, socket.client.port))
        if self.per_token[token] >= self.max_per_token:
            await socket.send_json(
                {"type": "error", "error": "too many connections for this token"}
            )
            await socket.close(code=4429, reason="too many connections")
            return
        browser = Browser(socket, token)
        after = hello.get("after") if isinstance(hello.get("after"), dict) else {}
        for _login, stream, _target, channel, _last, acked in streams:
            given = after.get(stream)
            # 0 (or nothing) means "nothing handled here yet": start after the ack.
            browser.sent[stream] = given if isinstance(given, int) and given > 0 else acked
            browser.channels[stream] = channel
            self.by_channel[channel].add(browser)
            self.to_listen.put_nowait(channel)
        self.per_token[token] += 1
        await socket.send_json(
            {
                "type": "hello",
                "login": streams[0][0] if streams else None,
                "desk": desk[0],  # what people call it: the page's title, not the login
                "extension": desk[1],
                "presence": desk[2],
                "streams": sorted(browser.sent),
                "card_url": card_url,
            }
        )
        log.info("browser connected for a desk login (%d stream(s))", len(browser.sent))
        browser.wake.set()  # catch up first
        try:
            # Either ending ends the session: a refused token stops the pushes, a closed
            # socket the acks.
            tasks = [
                asyncio.create_task(self._push(browser)),
                asyncio.create_task(self._acks(browser)),
            ]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    if not isinstance(exc, (WebSocketDisconnect, RuntimeError)):
                        raise exc
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.per_token[token] -= 1
            for browsers in self.by_channel.values():
                browsers.discard(browser)

    async def _wallboard(self, socket: WebSocket, token: str) -> None:
        """The supervisor's board: the floor now, sent again whenever it changes (asked
        for every second: one small query, whoever watches)."""
        last = None
        try:
            while True:
                try:
                    ((board,),) = await self.call("gateway_wallboard", token)
                except psycopg.Error as exc:
                    await _refuse(socket, exc)
                    return
                GUARD.authenticated(socket.client and (socket.client.host, socket.client.port))
                board.pop("at", None)
                if board != last:
                    await socket.send_json({"type": "wallboard", **board})
                    last = board
                await asyncio.sleep(1)
        except (WebSocketDisconnect, RuntimeError):
            pass

    async def _push(self, browser: Browser) -> None:
        while True:
            await browser.wake.wait()
            browser.wake.clear()
            for stream in browser.sent:
                while True:
                    try:
                        items = await self.call(
                            "gateway_pull", browser.token, stream, browser.sent[stream]
                        )
                    except psycopg.errors.InvalidAuthorizationSpecification as exc:
                        await _refuse(browser.socket, exc)  # revoked, or its login gone
                        return
                    except psycopg.OperationalError:
                        log.warning("the database did not answer a pull; trying again")
                        await asyncio.sleep(1)
                        browser.wake.set()
                        break
                    for seq, type_, call_id, payload, created_at in items:
                        await browser.socket.send_json(
                            {
                                "type": "item",
                                "stream": stream,
                                "seq": seq,
                                "item": type_,
                                "call_id": call_id,
                                "payload": payload,
                                "created_at": created_at.isoformat(),
                            }
                        )
                        browser.sent[stream] = seq
                    if len(items) < 100:
                        break

    async def _acks(self, browser: Browser) -> None:
        while True:
            text = await browser.socket.receive_text()
            try:
                await self._answer(browser, json.loads(text))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # A bad message is the browser's mistake: say so, and keep the connection.
                await browser.socket.send_json(
                    {
                        "type": "error",
                        "error": f"bad message ({type(exc).__name__}): expected "
                        '{"ack": {"stream": ..., "seq": ...}}, {"contacts": <call_id>}, '
                        '{"dial": {"number": ..., "client_id": ...}}, {"dials": true} or '
                        '{"presence": {"state": "available" | "away" | "dnd"}}',
                    }
                )

    def _ack_done(self, task: asyncio.Task) -> None:
        self.acks_under_way.discard(task)
        if not task.cancelled() and task.exception() is not None:  # retrieved: no stray report
            log.warning("an acknowledgement failed (%s)", type(task.exception()).__name__)

    async def _ack_and_tell(self, browser: Browser, stream: str, seq: int) -> None:
        """Acknowledge; then every other page of the desk sees it: one that did not make it
        shows "taken by another session" (a stolen token acking is no secret)."""
        await self.call("gateway_ack", browser.token, stream, seq)
        for other in list(self.by_channel.get(browser.channels.get(stream, ""), ())):
            if other is not browser:
                await _told(other, stream, seq)

    async def _answer(self, browser: Browser, message: dict) -> None:
        if "ack" in message:
            ack = message["ack"]
            stream, seq = str(ack["stream"]), int(ack["seq"])
            # An ack received is made, and told, even if its session ends meanwhile (a page
            # that acks and closes at once): a task of its own, not the session's.
            task = asyncio.create_task(self._ack_and_tell(browser, stream, seq))
            self.acks_under_way.add(task)
            task.add_done_callback(self._ack_done)
            await asyncio.shield(task)
        else:  # what a desk asks (gateway_desk_actions.py)
            await gateway_desk_actions.answer(self.call, browser.token, browser.socket, message)


async def _told(other: Browser, stream: str, seq: int) -> None:
    with contextlib.suppress(Exception):  # a page that is going: nothing to tell
        await other.socket.send_json({"type": "acked", "stream": stream, "seq": seq})


async def _refuse(socket: WebSocket, exc: psycopg.Error) -> None:
    """A refused token ends the page's tries (4401); a database that cannot answer now is
    worth another try (1013, the page reconnects by itself)."""
    if isinstance(exc, psycopg.errors.InvalidAuthorizationSpecification):
        await socket.send_json({"type": "error", "error": exc.diag.message_primary})
        await socket.close(code=4401, reason="token refused")
    else:
        log.error("the database did not answer a browser (%s); it will retry", type(exc).__name__)
        await socket.close(code=1013, reason="database unavailable, try again")


def app(
    dsn: str,
    allowed_origins: set[str],
    card_url: str = "",
    max_per_token: int = 3,
    recordings: RecordingsFolder | None = None,
    pbx_api: OnlinepbxApi | None = None,
) -> Starlette:
    hub = Hub(dsn, max_per_token)
    page = PAGE.read_text(encoding="utf-8")

    board = (PAGE.parent / "wallboard.html").read_text(encoding="utf-8")

    async def desk(request) -> HTMLResponse:
        return HTMLResponse(page)

    async def route(request) -> Response:
        return await gateway_http.route(hub.call, request)

    async def recording(request) -> Response:
        return await gateway_http.recording(hub.call, recordings, pbx_api, request)

    async def wallboard(request) -> HTMLResponse:
        return HTMLResponse(board)

    async def websocket(socket: WebSocket) -> None:
        await hub.serve(socket, allowed_origins, card_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        asyncio.get_running_loop().set_exception_handler(quiet_accept_errors)
        tasks = [asyncio.create_task(hub.listen_forever()), asyncio.create_task(hub.tick_forever())]
        yield
        for task in tasks:
            task.cancel()

    return Starlette(
        routes=[
            Route("/", desk),
            Route("/wallboard", wallboard),
            Route("/route", route),
            Route("/recording/{call_id:int}", recording),
            WebSocketRoute("/ws", websocket),
        ],
        lifespan=lifespan,
    )


def run(
    dsn: str,
    host: str,
    port: int,
    allowed_origins: set[str],
    card_url: str,
    max_pending: int = 2048,
    max_pending_per_address: int = 64,
    recordings: RecordingsFolder | None = None,
    pbx_api: OnlinepbxApi | None = None,
) -> None:
    import uvicorn

    GUARD.configure(max_pending, max_pending_per_address, raise_file_limit())
    config = uvicorn.Config(
        app(dsn, allowed_origins, card_url, recordings=recordings, pbx_api=pbx_api),
        host=host,
        port=port,
        log_level="info",
        access_log=False,  # a recording's URL may carry a token: never logged
        timeout_graceful_shutdown=2,  # browsers reconnect and catch up: no need to wait on them
        http=GuardedProtocol,  # a deadline on the request, a cap on who has no token yet
        backlog=ACCEPT_BURST,  # what asyncio accepts at once, before the guard sees any
        ws_max_size=MESSAGE_MAX_BYTES,  # bigger frames are refused before they are read
    )
    # uvicorn logs two lines per WebSocket, with the client's address: under a siege that
    # is the flood. Connections are counted instead (gateway_guard), sparingly.
    logging.getLogger("uvicorn.error").addFilter(_per_connection_lines)
    uvicorn.Server(config).run()


def _per_connection_lines(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not (
        message in ("connection open", "connection closed")
        or message.endswith('"WebSocket /ws" [accepted]')
        or '"WebSocket /ws" 403' in message
    )
