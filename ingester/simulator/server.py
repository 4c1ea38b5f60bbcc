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
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ingester.simulator.loopback import LoopbackPbx

log = logging.getLogger("pgcti.simulator")


class Onlinepbx3Server(LoopbackPbx):
    name = "onlinePBX 3.0"

    # Connections to turn away as a busy cloud service does (a test sets it): HTTP 429.
    busy_for = 0

    def _process_request(self, connection: ServerConnection, request):
        given = parse_qs(urlsplit(request.path).query).get("key", [""])[0]
        if given != self.key:
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid API key\n")
        if self.busy_for > 0:
            self.busy_for -= 1
            self.refused += 1
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "rate limited\n")
        return None

    async def _session(self, ws: ServerConnection) -> None:
        groups = self.subscribers[ws] = set()
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
                    groups |= set(data.get("eventGroups") or [])
                    self.subscriptions += 1
                    await ws.send(
                        json.dumps(
                            {
                                "event": "subscribed",
                                "reqId": req,
                                "data": {"eventGroups": sorted(groups)},
                            }
                        )
                    )
                    self.subscribed.set()
                elif name == "unsubscribe":
                    groups -= set(data.get("eventGroups") or [])
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

    async def send(self, frame: dict | str | bytes | tuple[str, ...], group: str = "calls") -> int:
        """Send one event to every client subscribed to `group`; returns how many got it.
        A tuple of strings goes out as one message in that many fragments."""
        text = (
            frame
            if isinstance(frame, str | bytes | tuple)
            else json.dumps(frame, ensure_ascii=False)
        )
        return await self._broadcast(text, group)


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
