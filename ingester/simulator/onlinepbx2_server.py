"""The onlinePBX API 2.0 side of the simulator: socket.io 0.9 on loopback.

`GET /socket.io/1/?key=..&domain=..` answers `sid:heartbeat:close:websocket` (HTTP 401
for a wrong key or domain); `/socket.io/1/websocket/<sid>` then speaks 0.9 packets:
`1::` on connect, `2::` heartbeats (a client that stops answering is cut off),
`subscribe` answered by a `callback` event with the caller's hash, events as `5:::`;
`make_call` ({"from": extension, "to": number}) answered by a `callback` with `status` "1"
and the call played (placed_calls.py), or "0" and a `comment`. Same interface as the 3.0
server (send, drop_clients, counters).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ingester.pipeline.transports import socketio09
from ingester.simulator.loopback import LoopbackPbx
from ingester.simulator.placed_calls import PlacedCalls

log = logging.getLogger("pgcti.simulator")
GROUP_OF = {"blf": "blf", "registration": "registration"}  # every other event is a "calls" event


class Onlinepbx2Server(LoopbackPbx):
    name = "onlinePBX 2.0 (socket.io 0.9)"
    scheme = "http"

    def __init__(
        self,
        key: str,
        domain: str = "demo.onpbx.ru",
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat: float = 10.0,
    ) -> None:
        super().__init__(key, host, port)
        self.domain, self.heartbeat = domain, heartbeat
        self.sessions: set[str] = set()
        self.calls = PlacedCalls(self, domain)  # what make_call asked for

    def _process_request(self, connection: ServerConnection, request):
        parts = urlsplit(request.path)
        if parts.path.rstrip("/") == "/socket.io/1":
            query = parse_qs(parts.query)
            if query.get("key", [""])[0] != self.key or query.get("domain", [""])[0] != self.domain:
                self.refused += 1
                return connection.respond(HTTPStatus.UNAUTHORIZED, "handshake unauthorized\n")
            sid = secrets.token_hex(10)
            self.sessions.add(sid)
            timeout = max(int(self.heartbeat * 2), 1)
            return connection.respond(HTTPStatus.OK, f"{sid}:{timeout}:{timeout}:websocket")
        if parts.path.startswith("/socket.io/1/websocket/"):
            if parts.path.rsplit("/", 1)[1] not in self.sessions:
                return connection.respond(HTTPStatus.FORBIDDEN, "unknown session\n")
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    async def _session(self, ws: ServerConnection) -> None:
        groups = self.subscribers[ws] = set()
        beats = asyncio.create_task(self._heartbeats(ws))
        try:
            await ws.send("1::")
            async for message in ws:
                packet = socketio09.decode(str(message))
                if packet.type == socketio09.HEARTBEAT:
                    ws.last_beat_answered = True  # type: ignore[attr-defined]
                elif packet.type == socketio09.EVENT:
                    await self._command(ws, groups, json.loads(packet.data))
                elif packet.type == socketio09.DISCONNECT:
                    break
        except (ConnectionClosed, ValueError):
            pass  # a client that leaves or talks nonsense is cut off, not an error of ours
        finally:
            beats.cancel()
            self.subscribers.pop(ws, None)

    async def _command(self, ws: ServerConnection, groups: set[str], command: dict) -> None:
        args = (command.get("args") or [{}])[0] or {}
        answer: dict = {"hash": args.get("callback_hash")}
        if command.get("name") == "make_call":
            source, target = str(args.get("from") or ""), str(args.get("to") or "")
            refused = (
                self.calls.place(source, target) if source and target else "from and to needed"
            )
            answer |= {"status": "0", "comment": refused} if refused else {"status": "1"}
        else:
            if command.get("name") == "subscribe":
                groups.clear()
                groups.update(name for name, on in (args.get("events") or {}).items() if on)
                self.subscriptions += 1
                self.subscribed.set()
            answer["data"] = {"events": sorted(groups)}
        await ws.send(socketio09.event("callback", answer))

    async def _heartbeats(self, ws: ServerConnection) -> None:
        while True:
            ws.last_beat_answered = False  # type: ignore[attr-defined]
            await ws.send("2::")
            await asyncio.sleep(self.heartbeat)
            if not ws.last_beat_answered:  # type: ignore[attr-defined]
                log.info("client missed a heartbeat; closing its connection")
                await ws.close()
                return

    async def send(self, event: dict | str, group: str | None = None) -> int:
        """Send one 2.0 event ({"name", "args"}) to every client subscribed to its group."""
        if isinstance(event, str):
            text, group = socketio09.EVENT + ":::" + event, group or "calls"
        else:
            text, group = (
                socketio09.event(event["name"], *event["args"]),
                group or GROUP_OF.get(event["name"], "calls"),
            )
        return await self._broadcast(text, group)
