"""A small TCP proxy in front of the database's Unix socket, for network-fault tests.

Modes: "pass" (forward), "delay" (forward each chunk after `delay` seconds),
"blackhole" (accept and swallow, answer nothing), "refuse" (close each new
connection at once, as a database that is down), and reset() (cut every
connection at once, as a crashed router would).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path


class TcpProxy:
    def __init__(self, unix_socket: Path) -> None:
        self.target = unix_socket
        self.mode = "pass"
        self.delay = 0.0
        self.connections: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self.loop
        ).result(5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        except OSError:
            writer.close()
            return
        self.connections |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self.connections.discard(w)
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.mode == "blackhole":
                continue
            if self.mode == "delay":
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()

    def reset(self) -> None:
        def cut() -> None:
            for w in list(self.connections):
                w.transport.abort()

        self.loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        self.reset()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
