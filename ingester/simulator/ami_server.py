"""A simulated Asterisk Manager Interface on loopback: the banner, Login (a user and a
secret), Ping, event blocks sent to every logged-in client (for example replayed from a
capture file: `Key: Value` lines, a blank line after each block), and Originate, which
places a click-to-call (asterisk_originate.py) and counts every request it was sent."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from pathlib import Path

from ingester.simulator.asterisk_originate import click_to_call, originate_response, queued

log = logging.getLogger("pgcti.simulator.ami")
BANNER = "Asterisk Call Manager/5.0.2\r\n"


def blocks_of(path: Path) -> list[str]:
    """The event blocks of a capture file, each as sent on the wire (without its blank line)."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    return ["\r\n".join(b.split("\n")) for b in text.split("\n\n") if b.strip()]


class AmiServer:
    name = "Asterisk AMI"

    def __init__(self, user: str, secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.user, self.secret, self.host, self.port = user, secret, host, port
        self.clients: set[asyncio.StreamWriter] = set()
        self.logins = self.refused = self.pings = self.sent = 0
        self.mute = False  # True: answer no Ping (a PBX whose link hangs without closing)
        self.originates: Counter[str] = Counter()  # Originates received, by ChannelId
        self.originate_allowed = True  # False: the manager user lacks the originate class
        self.desk_answers = True  # False: every desk rung by an Originate lets it ring out
        self.placing_seconds = 0.2  # from an Originate to its call's first event
        self._uniqueid = 1700000500
        self.logged_in = asyncio.Event()
        self.subscribed = self.logged_in  # as the other simulators call a client that listens
        self._server: asyncio.Server | None = None
        self._placing: set[asyncio.Task] = set()

    @property
    def subscriptions(self) -> int:  # as the other simulators count clients that came
        return self.logins

    @property
    def url(self) -> str:
        return f"ami://{self.user}@{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self.clients):
                writer.close()
            await self._server.wait_closed()

    def listeners(self) -> int:
        return len(self.clients)

    async def send(self, block: str | bytes) -> int:
        """One event block to every logged-in client; returns how many got it. Bytes go out
        as they are, so a test can send what a broken PBX would (bad UTF-8)."""
        sent = 0
        data = block if isinstance(block, bytes) else block.encode()
        for writer in list(self.clients):
            try:
                writer.write(data.rstrip(b"\r\n") + b"\r\n\r\n")
                await writer.drain()
                sent += 1
            except (ConnectionError, RuntimeError):
                self.clients.discard(writer)
        self.sent += 1
        return sent

    def _originate(self, fields: dict[str, str]) -> bytes:
        """Count it, answer that it is queued (or refused), and place the call."""
        action_id = fields.get("actionid", "")
        self.originates[fields.get("channelid", "")] += 1
        if not self.originate_allowed:
            return _block(
                {"Response": "Error", "ActionID": action_id, "Message": "Permission denied"}
            )
        desk = re.match(r"^Local/([^@]+)@", fields.get("channel", ""))
        if desk is None:
            return _block(
                {"Response": "Error", "ActionID": action_id, "Message": "Channel not found"}
            )
        task = asyncio.create_task(self._place(action_id, fields, desk.group(1)))
        self._placing.add(task)
        task.add_done_callback(self._placing.discard)
        return (queued(action_id) + "\r\n\r\n").encode()

    async def _place(self, action_id: str, fields: dict[str, str], extension: str) -> None:
        await asyncio.sleep(self.placing_seconds)
        self._uniqueid += 10
        lid = fields.get("channelid") or f"{self._uniqueid}.0"
        blocks = click_to_call(
            lid,
            extension,
            fields.get("exten", ""),
            next_uniqueid=f"{self._uniqueid}.1",
            context=fields.get("context", "from-internal"),
            desk_answers=self.desk_answers,
        )
        answer = originate_response(action_id, fields, f"Local/{extension}", self.desk_answers)
        at = 7 if self.desk_answers else len(blocks)  # Success once the desk is up
        for b in [*blocks[:at], answer, *blocks[at:]]:
            await self.send(b)

    async def drop_clients(self) -> int:
        dropped = list(self.clients)
        for writer in dropped:
            writer.transport.abort()
        self.clients.clear()
        return len(dropped)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER.encode())
        try:
            while True:
                action = await _read_action(reader)
                if action is None:
                    return
                name, fields = action.get("action", "").lower(), action
                answer = {"ActionID": fields.get("actionid", "")}
                if name == "login":
                    if fields.get("username") == self.user and fields.get("secret") == self.secret:
                        answer |= {"Response": "Success", "Message": "Authentication accepted"}
                        self.logins += 1
                        writer.write(_block(answer))
                        writer.write(
                            _block(
                                {
                                    "Event": "FullyBooted",
                                    "Privilege": "system,all",
                                    "Status": "Fully Booted",
                                }
                            )
                        )
                        self.clients.add(writer)
                        self.logged_in.set()
                    else:
                        self.refused += 1
                        writer.write(
                            _block(
                                answer | {"Response": "Error", "Message": "Authentication failed"}
                            )
                        )
                        await writer.drain()
                        return
                elif name == "originate":
                    writer.write(self._originate(fields))
                elif name == "ping":
                    self.pings += 1
                    if self.mute:
                        continue
                    writer.write(_block(answer | {"Response": "Success", "Ping": "Pong"}))
                else:
                    writer.write(
                        _block(answer | {"Response": "Error", "Message": "Invalid/unknown command"})
                    )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.clients.discard(writer)
            writer.close()


async def _read_action(reader: asyncio.StreamReader) -> dict[str, str] | None:
    fields: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if not raw:
            return None
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if fields:
                return fields
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.strip()


def _block(fields: dict[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()
