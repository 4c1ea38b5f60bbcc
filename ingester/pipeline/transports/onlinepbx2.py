"""onlinePBX WebSocket API 2.0: socket.io 0.9 (one HTTP GET handshake, then a WebSocket).

Handshake `GET /socket.io/1/?key=..&domain=..` -> `sid:heartbeat:close:transports`; then
`/socket.io/1/websocket/<sid>`. We echo heartbeats, subscribe with a `callback_hash`,
and store each event packet's JSON ({"name", "args"}) as the raw frame. A silent
connection (no heartbeat within the server's timeout) counts as dropped. Click-to-call's
`make_call` goes out on the same socket (Onlinepbx2Link); its answer is a `callback` event,
stored like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import connect

from ingester.frame import Frame
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.transports import socketio09
from ingester.pipeline.transports.common import (
    MAX_FRAME_BYTES,
    NotSent,
    PbxRefused,
    receive_text,
)
from ingester.pipeline.transports.oversize import ReadingPastOversize, oversize_record
from ingester.redaction import Secret

SOURCE = "onlinepbx2"
EVENT_GROUPS = ("calls", "blf", "messages", "callback", "api", "registration")
log = logging.getLogger("pgcti.onlinepbx2")


class Onlinepbx2Link:
    """The subscribed socket, for commands pgcti sends (click-to-call's `make_call`). Their
    answers are `callback` events with the command's `callback_hash`, stored like events."""

    def __init__(self) -> None:
        self._ws: ReadingPastOversize | None = None
        self.up = asyncio.Event()

    def attach(self, ws: ReadingPastOversize) -> None:
        self._ws = ws
        self.up.set()

    def detach(self) -> None:
        self._ws = None
        self.up.clear()

    async def send(self, name: str, data: dict) -> None:
        if self._ws is None:
            raise NotSent("the onlinePBX socket is down")
        try:
            await self._ws.send(socketio09.event(name, data))
        except websockets.ConnectionClosed:
            raise NotSent("the onlinePBX socket closed before the command was sent") from None


def _delays() -> Iterator[float]:
    delay = 0.5
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, 15.0)


def handshake(url: str, key: Secret, domain: str) -> tuple[str, float]:
    parts = urlsplit(url)
    query = urlencode({"key": key.reveal(), "domain": domain})
    address = urlunsplit((parts.scheme, parts.netloc, "/socket.io/1/", query, ""))
    try:
        with urllib.request.urlopen(address, timeout=10) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise PbxRefused(
                f"the PBX refused the handshake with HTTP {exc.code}: check the API key and domain"
            ) from None
        raise ConnectionError(f"handshake failed with HTTP {exc.code}") from None
    sid, heartbeat, _close, transports = socketio09.parse_handshake(body)
    if "websocket" not in transports:
        raise PbxRefused(f"the PBX offers no websocket transport ({', '.join(transports)})")
    return sid, heartbeat


async def run(
    url: str,
    key: Secret,
    domain: str,
    subscriptions: tuple[str, ...],
    deliver: Callable[[Frame], Awaitable[None]],
    metrics: Metrics,
    link: Onlinepbx2Link | None = None,
) -> None:
    """Receive until cancelled; ``link``, when given, lends the subscribed socket to
    click-to-call."""
    # Who answered comes as `blf` events in 2.0, so subscribing to calls implies blf.
    wanted = set(subscriptions) | ({"blf"} if "calls" in subscriptions else set())
    request = socketio09.event(
        "subscribe",
        {"events": {g: g in wanted for g in EVENT_GROUPS}, "callback_hash": "pgcti-subscribe"},
    )
    delays = _delays()
    first = True
    parts = urlsplit(url)
    while True:
        try:
            sid, heartbeat = await asyncio.to_thread(handshake, url, key, domain)
            ws_url = urlunsplit(
                (
                    "wss" if parts.scheme == "https" else "ws",
                    parts.netloc,
                    f"/socket.io/1/websocket/{sid}",
                    "",
                    "",
                )
            )
            async with connect(
                ws_url,
                max_size=MAX_FRAME_BYTES,
                create_connection=ReadingPastOversize,  # a bigger frame is read past, not fatal
                max_queue=1,  # as for 3.0: memory stays bounded under big frames
                compression=None,
                ping_interval=None,
                open_timeout=10,
                close_timeout=1,
                logger=logging.getLogger("pgcti.websockets"),
            ) as ws:
                if not first:
                    metrics.reconnects.labels("pbx").inc()
                first = False
                await ws.send(request)
                log.info(
                    "connected to %s (socket.io 0.9), subscribing to %s",
                    parts.netloc,
                    ", ".join(sorted(wanted)),
                )
                metrics.pbx_connected.set(1)
                delays = _delays()
                if link is not None:
                    link.attach(ws)
                try:
                    await _receive(ws, heartbeat or 60.0, deliver, metrics)
                except asyncio.CancelledError:
                    await asyncio.shield(
                        ws.send("0::")
                    )  # socket.io's goodbye, then the WebSocket's
                    await asyncio.shield(ws.close())
                    raise
        except PbxRefused:
            raise
        except (
            OSError,
            ConnectionError,
            TimeoutError,
            ValueError,
            websockets.WebSocketException,
        ) as exc:
            log.warning("PBX connection dropped (%s); reconnecting", str(exc) or type(exc).__name__)
        finally:
            metrics.pbx_connected.set(0)
            if link is not None:
                link.detach()
        await asyncio.sleep(next(delays))


async def _receive(
    ws: ReadingPastOversize,
    heartbeat_timeout: float,
    deliver: Callable[[Frame], Awaitable[None]],
    metrics: Metrics,
) -> None:
    while True:
        try:
            # Undecoded: bad UTF-8 is kept (escaped) instead of closing the connection.
            message = await asyncio.wait_for(ws.recv(decode=False), heartbeat_timeout)
        except TimeoutError:
            raise ConnectionError(
                f"no heartbeat from the PBX for {heartbeat_timeout:.0f}s"
            ) from None
        record = oversize_record(ws, message, MAX_FRAME_BYTES, metrics)
        if record is not None:  # not a socket.io packet: stored as it is
            await deliver(Frame(SOURCE, datetime.now(UTC), record))
            continue
        text = receive_text(message)
        try:
            packet = socketio09.decode(text)
        except ValueError:
            await deliver(Frame(SOURCE, datetime.now(UTC), text))  # kept; the database says why
            continue
        if packet.type == socketio09.HEARTBEAT:
            await ws.send("2::")
        elif packet.type == socketio09.EVENT:
            await deliver(Frame(SOURCE, datetime.now(UTC), packet.data))
        elif packet.type == socketio09.DISCONNECT:
            raise ConnectionError("the PBX sent disconnect")
        elif packet.type == socketio09.ERROR:
            log.warning("PBX error packet: %s", packet.data[:200])
        else:
            log.debug("socket.io packet %s ignored", packet.type)
