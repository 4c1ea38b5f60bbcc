"""onlinePBX's HTTP API on loopback, for click-to-call and recordings: `POST
/<domain>/auth.json` (the API key as `auth_key` gives `key_id` and `key`), `POST
/<domain>/call/now.json` (header `x-pbx-authentication: key_id:key`; `from` the extension,
`to` the number), answered with `status: "1"`, and the call then played on the simulator's
WebSocket (placed_calls.py).
`POST /<domain>/mongo_history/search.json` with a call's `uuid` and `download=1` answers a
signed link to its recording (`data`), valid for `link_seconds`; `GET` on that link gives
the file, with range requests. Every call/now and every search is counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import Counter
from urllib.parse import parse_qs

from ingester.simulator.placed_calls import PlacedCalls

log = logging.getLogger("pgcti.simulator.http")
MAX_BODY = 8192


class OnlinepbxHttpApi:
    def __init__(
        self, pbx, key: str, domain: str = "demo.onpbx.ru", host: str = "127.0.0.1"
    ) -> None:
        self.pbx, self.key, self.domain, self.host = pbx, key, domain, host
        self.port = 0
        self.calls = PlacedCalls(pbx, domain)  # what call/now asked for
        self.sessions: set[str] = set()
        self.recordings: dict[str, bytes] = {}  # call uuid -> its recording, as the PBX keeps it
        self.searches: Counter[str] = Counter()  # recording links asked for, by uuid
        self.link_seconds = 1800.0
        self._links: dict[str, tuple[str, float]] = {}  # signature -> (uuid, valid until)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.domain}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1").split()
            headers = {}
            while line := (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1").strip():
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            size = min(int(headers.get("content-length", "0") or 0), MAX_BODY)
            body = await asyncio.wait_for(reader.readexactly(size), 5) if size else b""
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            if len(request) >= 2 and request[0] == "GET":
                status, kind, data, extra = self._download(request[1], headers)
            else:
                status, answer = self._answer(request, headers, form)
                kind, data, extra = "application/json", json.dumps(answer).encode(), {}
            head = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{head}"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _answer(self, request: list[str], headers: dict, form: dict) -> tuple[str, dict]:
        if len(request) < 2 or request[0] != "POST":
            return "405 Method Not Allowed", {"status": "0", "comment": "POST only"}
        path = request[1]
        if path == f"/{self.domain}/auth.json":
            if form.get("auth_key") != self.key:
                return "200 OK", {"status": "0", "comment": "auth_key is invalid"}
            key_id, key = secrets.token_hex(8), secrets.token_hex(16)
            self.sessions.add(f"{key_id}:{key}")
            return "200 OK", {"status": "1", "data": {"key_id": key_id, "key": key}}
        if path == f"/{self.domain}/call/now.json":
            if headers.get("x-pbx-authentication") not in self.sessions:
                return "200 OK", {"status": "0", "comment": "authentication required"}
            refused = self.calls.place(form.get("from", ""), form.get("to", ""))
            if refused:
                return "200 OK", {"status": "0", "comment": refused}
            return "200 OK", {"status": "1"}
        if path == f"/{self.domain}/mongo_history/search.json":
            if headers.get("x-pbx-authentication") not in self.sessions:
                return "200 OK", {"status": "0", "comment": "authentication required"}
            uuid = form.get("uuid", "")
            self.searches[uuid] += 1
            if form.get("download") != "1" or uuid not in self.recordings:
                return "200 OK", {"status": "1", "data": []}
            signature = secrets.token_urlsafe(24)
            self._links[signature] = (uuid, time.monotonic() + self.link_seconds)
            link = f"http://{self.host}:{self.port}/calls-records/download/{signature}/{uuid}.mp3"
            return "200 OK", {"status": "1", "data": link}
        return "404 Not Found", {"status": "0", "comment": "no such method"}

    def _download(self, path: str, headers: dict) -> tuple[str, str, bytes, dict]:
        """A signed link's file while it is valid, whole or the range asked for."""
        parts = path.split("/")
        uuid, until = self._links.get(parts[3] if len(parts) > 3 else "", ("", 0.0))
        if path.split("/")[1:3] != ["calls-records", "download"] or time.monotonic() > until:
            return "403 Forbidden", "text/plain", b"link expired or unknown", {}
        data = self.recordings[uuid]
        asked = headers.get("range", "").removeprefix("bytes=").split("-")
        if len(asked) != 2 or not asked[0].isdigit():
            return "200 OK", "audio/mpeg", data, {"Accept-Ranges": "bytes"}
        first = int(asked[0])
        last = min(int(asked[1]) if asked[1].isdigit() else len(data) - 1, len(data) - 1)
        extra = {"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{last}/{len(data)}"}
        return "206 Partial Content", "audio/mpeg", data[first : last + 1], extra
