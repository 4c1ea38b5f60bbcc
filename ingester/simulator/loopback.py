"""What both simulated PBXs share: a WebSocket server on loopback, its subscribers and their
event groups, broadcasting to a group, counters for tests, and dropping every client at once."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("pgcti.simulator")


class LoopbackPbx(ABC):
    name = "PBX"
    scheme = "ws"

    def __init__(self, key: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.key, self.host, self.port = key, host, port
        self.subscribers: dict[ServerConnection, set[str]] = {}  # client -> subscribed event groups
        self.sent = self.refused = self.subscriptions = 0
        self.subscribed = asyncio.Event()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._server = await serve(
            self._session,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=2**20,
            logger=logging.getLogger("pgcti.simulator.ws"),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s simulator listening on %s", self.name, self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @abstractmethod
    async def _session(self, ws: ServerConnection) -> None:
        """Speak the protocol with one client (each PBX its own)."""

    @abstractmethod
    def _process_request(self, connection: ServerConnection, request):
        """Check the key before the WebSocket handshake (each PBX its own way)."""

    def listeners(self, group: str = "calls") -> int:
        return sum(1 for groups in self.subscribers.values() if group in groups)

    async def _broadcast(self, text: str | bytes | tuple[str, ...], group: str) -> int:
        """Send to every client subscribed to `group`; returns how many got it. Bytes go out
        as a text frame as they are, so a test can send what a broken PBX would (bad UTF-8);
        a tuple goes out as one message in fragments."""
        delivered = 0
        for ws, groups in list(self.subscribers.items()):
            if group in groups:
                try:
                    if isinstance(text, tuple):
                        await ws.send(list(text))
                    else:
                        await ws.send(text, text=True)
                    delivered += 1
                except ConnectionClosed:
                    pass  # gone mid-send; a PBX does not re-send
        self.sent += 1
        return delivered

    async def drop_clients(self) -> int:
        """Cut every client off abruptly, as a network failure would."""
        dropped = list(self.subscribers)
        for ws in dropped:
            ws.transport.abort()
        return len(dropped)
