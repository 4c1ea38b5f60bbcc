"""The onlinePBX API 3.0 side of the simulator: a WebSocket server on loopback.

Checks the key in the URL (HTTP 401 otherwise), answers `subscribe` with
`subscribed`, sends each event only to clients subscribed to its group, and can
drop every client on demand (fault tests).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("pgcti.simulator")


@dataclass
class Subscriber:
    ws: ServerConnection
    groups: set[str] = field(default_factory=set)


class Onlinepbx3Server:
    def __init__(self, key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.key = key
        self.host = host
        self.port = port
        self.subscribers: dict[ServerConnection, Subscriber] = {}
        self.sent = 0
        self.refused = 0
        self.subscriptions = 0
        self.subscribed = asyncio.Event()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._server = await serve(
            self._session,
            self.host,
            self.port,
            process_request=self._check_key,
            max_size=2**20,
            logger=logging.getLogger("pgcti.simulator.ws"),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("onlinePBX 3.0 simulator listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check_key(self, connection: ServerConnection, request):
        given = parse_qs(urlsplit(request.path).query).get("key", [""])[0]
        if given != self.key:
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid API key\n")
        return None

    async def _session(self, ws: ServerConnection) -> None:
        sub = self.subscribers[ws] = Subscriber(ws)
        try:
            async for message in ws:
                try:
                    command = json.loads(message)
                    name, data, req = (
                        command.get("command"),
                        command.get("data") or {},
                        command.get("reqId"),
                    )
                except (ValueError, AttributeError):
                    await ws.send(
                        json.dumps({"event": "error", "data": {"message": "invalid JSON"}})
                    )
                    continue
                if name == "subscribe":
                    sub.groups |= set(data.get("eventGroups") or [])
                    self.subscriptions += 1
                    await ws.send(
                        json.dumps(
                            {
                                "event": "subscribed",
                                "reqId": req,
                                "data": {"eventGroups": sorted(sub.groups)},
                            }
                        )
                    )
                    self.subscribed.set()
                elif name == "unsubscribe":
                    sub.groups -= set(data.get("eventGroups") or [])
                    await ws.send(json.dumps({"event": "unsubscribed", "reqId": req, "data": {}}))
                else:
                    await ws.send(
                        json.dumps(
                            {
                                "event": "error_" + str(name),
                                "reqId": req,
                                "data": {"message": "unsupported command"},
                            }
                        )
                    )
        except ConnectionClosed:
            pass  # clients come and go; an abrupt drop is not the server's error
        finally:
            self.subscribers.pop(ws, None)

    def listeners(self, group: str = "calls") -> int:
        return sum(1 for s in self.subscribers.values() if group in s.groups)

    async def send(self, frame: dict | str, group: str = "calls") -> int:
        """Send one event to every client subscribed to `group`; returns how many got it."""
        text = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
        delivered = 0
        for sub in list(self.subscribers.values()):
            if group in sub.groups:
                try:
                    await sub.ws.send(text)
                    delivered += 1
                except Exception:  # a client that went away mid-send; the PBX does not re-send
                    log.debug("send to a departing client failed", exc_info=True)
        self.sent += 1
        return delivered

    async def drop_clients(self) -> int:
        """Cut every client off abruptly, as a network failure would."""
        dropped = list(self.subscribers)
        for ws in dropped:
            ws.transport.abort()
        return len(dropped)


async def play(
    server: Onlinepbx3Server,
    schedule,
    sent_log: list[tuple[float, dict]] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Send each (due, frame) at its time; returns frames sent."""
    count = 0
    for due, frame in schedule:
        if stop is not None and stop.is_set():
            break
        delay = due - time.time()
        if delay > 0:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
        await server.send(frame)
        if sent_log is not None:
            sent_log.append((time.time(), frame))
        count += 1
    return count
