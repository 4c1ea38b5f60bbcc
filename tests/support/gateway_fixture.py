"""`pgcti gateway` for the gateway tests: the real command as its own process, and a
browser's first exchange with it over a WebSocket."""

from __future__ import annotations

import resource
import subprocess
import urllib.error
import urllib.request

from ingester.clients import gateway_process
from tests.support.live import wait_for


class Gateway:
    def __init__(self, dsn: str, port: int, *extra: str, file_limit: int | None = None) -> None:
        self.port = port
        card_url = ("--card-url", "https://crm.example/clients/{client_id}")

        def limit_files() -> None:  # as a unit's LimitNOFILE would (soft and hard)
            if file_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

        self.proc = subprocess.Popen(
            gateway_process.command(dsn, port, *card_url, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit_files,
        )
        wait_for(lambda: gateway_process.listening(port), what="the gateway to listen")

    def url(self, token: str) -> str:
        return f"http://127.0.0.1:{self.port}/#token={token}"

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"the gateway did not stop on SIGTERM:\n{out}") from None
        return out


def hello(port: int, token: str, origin: str | None = None) -> tuple[dict | None, int | None]:
    """Connect as a browser would; (first message, close code)."""
    import asyncio
    import json

    import websockets

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=origin) as ws:
            await ws.send(json.dumps({"token": token}))
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except websockets.ConnectionClosed as closed:
                return None, closed.rcvd.code if closed.rcvd else None
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                return first, None  # still open
            except websockets.ConnectionClosed as closed:
                return first, closed.rcvd.code if closed.rcvd else None
            return first, None

    try:
        return asyncio.run(go())
    except websockets.InvalidStatus as refused:
        return None, refused.response.status_code


def http_get(
    port: int, path: str, token: str | None = None, headers: dict | None = None
) -> tuple[int, bytes, dict]:
    """A plain GET of the gateway (/route, /recording/...), as a PBX or an <audio> makes it:
    the status, the body's bytes and the headers, refusals included."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), dict(refused.headers)


def header(headers: dict, name: str) -> str | None:
    """A response header by name, whatever its case (uvicorn sends them in lower case)."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
