"""What keeps outsiders from taking the gateway down before they show a token.

The gateway faces the office network; a connection that has not yet shown a valid token
costs a file descriptor and memory and proves nothing. So, per connection:

- its HTTP request must be complete within HEADER_SECONDS (uvicorn waits for ever);
- until its token is accepted it counts as *pending*: at most ``max_pending`` in all and
  ``max_pending_per_address`` from one client address; beyond, it is closed at once;
- no connection is kept within FD_RESERVE descriptors of the process's file limit (a
  burst of accepts, the database connections and the log need those), and asyncio's own
  reports of running out are counted like any refusal;
- each refusal is counted, and a warning says so at most once every WARN_EVERY seconds:
  a siege never floods the log.

- a page's Origin must be the gateway's own or one it was told to allow;
- the hello must come within HELLO_SECONDS, under HELLO_MAX_BYTES, and hold a token that
  can be one (read_hello); any message after it is under MESSAGE_MAX_BYTES (uvicorn
  refuses a bigger frame from its header).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections import Counter
from urllib.parse import urlsplit

from starlette.websockets import WebSocket
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("pgcti.gateway")

HEADER_SECONDS = 5.0
HELLO_SECONDS = 5.0  # a browser sends its hello at once; a socket that does not is closed
HELLO_MAX_BYTES = 1024  # {"token": 64 hex digits, "after": {...}}: well under
TOKEN_MAX_CHARS = 128
MESSAGE_MAX_BYTES = 4096  # any message: an ack or a contacts request is under 100 bytes
# asyncio accepts up to ACCEPT_BURST connections at a time before any is looked at (the
# listen backlog), so the reserve covers a burst, the database connections and the log.
ACCEPT_BURST = 128
FD_RESERVE = ACCEPT_BURST + 32
WARN_EVERY = 10.0


def raise_file_limit() -> int:
    """The soft limit on open files raised to the hard one (systemd's LimitNOFILE sets both);
    returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Guard:
    """Counts open and pending connections; says which to refuse, and warns sparingly."""

    def __init__(self, max_pending: int, max_pending_per_address: int, file_limit: int) -> None:
        self.configure(max_pending, max_pending_per_address, file_limit)
        self.open = 0
        self.pending: dict[tuple[str, int], str] = {}  # (address, port) -> address
        self.pending_per_address: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # why -> how many since the last warning
        self._warned_at = 0.0

    def configure(self, max_pending: int, max_pending_per_address: int, file_limit: int) -> None:
        self.max_pending, self.max_per_address = max_pending, max_pending_per_address
        self.max_open = max(file_limit - FD_RESERVE, 1)

    def admit(self, peer: tuple[str, int] | None) -> str | None:
        """None when the connection may stay (it is then counted), else why not."""
        address = peer[0] if peer else "?"
        if self.open >= self.max_open:
            return "near the file limit"
        if len(self.pending) >= self.max_pending:
            return "too many connections without a token"
        if self.pending_per_address[address] >= self.max_per_address:
            return "too many connections without a token from one address"
        self.open += 1
        if peer is not None:
            self.pending[peer] = address
            self.pending_per_address[address] += 1
        return None

    def authenticated(self, peer: tuple[str, int] | None) -> None:
        address = self.pending.pop(peer, None) if peer is not None else None
        if address is not None:
            self.pending_per_address[address] -= 1
            if not self.pending_per_address[address]:
                del self.pending_per_address[address]

    def closed(self, peer: tuple[str, int] | None) -> None:
        self.open -= 1
        self.authenticated(peer)  # no longer pending either way

    def refuse(self, why: str) -> None:
        self.refused[why] += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.refused.items()))
            log.warning(
                "connections refused since the last warning: %s (%d open, %d without a token "
                "yet); at most one such line every %.0f s",
                counts,
                self.open,
                len(self.pending),
                WARN_EVERY,
            )
            self.refused.clear()
            self._warned_at = now


GUARD = Guard(max_pending=2048, max_pending_per_address=64, file_limit=1024)


def quiet_accept_errors(loop, context: dict) -> None:
    """asyncio's own report of an accept() that ran out of descriptors (it pauses
    accepting for a second and tries again) comes with a traceback each time: counted and
    warned sparingly instead. Everything else goes to asyncio's default handler."""
    if "out of system resource" in str(context.get("message", "")):
        GUARD.refuse("near the file limit")
        return
    loop.default_exception_handler(context)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with the guard at the door and a deadline on the request."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._counted = False
        self._deadline = None
        refused = GUARD.admit(self.client)
        if refused:
            GUARD.refuse(refused)
            transport.abort()
            return
        self._counted = True
        self._deadline = self.loop.call_later(HEADER_SECONDS, self._too_slow)

    def _too_slow(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            GUARD.refuse("no complete request in time")
            self.transport.abort()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None:
            self._cancel_deadline()

    def handle_websocket_upgrade(self, event) -> None:  # type: ignore[override]
        self._cancel_deadline()
        super().handle_websocket_upgrade(event)
        # The WebSocket protocol owns the connection from here: it says when it is gone.
        websocket = self.transport.get_protocol()
        lost = websocket.connection_lost
        peer, self._counted = self.client, False

        def connection_lost(exc) -> None:
            GUARD.closed(peer)
            lost(exc)

        websocket.connection_lost = connection_lost

    def connection_lost(self, exc) -> None:
        self._cancel_deadline()
        if self._counted:
            self._counted = False
            GUARD.closed(self.client)
        super().connection_lost(exc)


def origin_allowed(headers, allowed_origins: set[str]) -> bool:
    """A browser always names the page's origin: the gateway's own (its Host), or one
    given with --allow-origin. A client that names none is no browser: no page of another
    site can make it connect, so it needs its token only."""
    origin = headers.get("origin")
    if origin is None or origin in allowed_origins:
        return True
    return urlsplit(origin).netloc.lower() == (headers.get("host") or "").lower()


async def read_hello(socket: WebSocket) -> dict | None:
    """The first message: {"token": ...}, small, within HELLO_SECONDS; None (and the
    socket closed with the reason) otherwise. A token that cannot be one (too long, a
    NUL) is refused here, without asking the database."""
    try:
        message = await asyncio.wait_for(socket.receive(), HELLO_SECONDS)
    except TimeoutError:
        await socket.close(code=4408, reason="no hello in time")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    try:
        if text is None or len(text) > HELLO_MAX_BYTES:
            raise ValueError("hello too big, or not text")
        hello = json.loads(text)
        hello["token"] = str(hello["token"])
    except (ValueError, KeyError, TypeError):
        await socket.send_json(
            {"type": "error", "error": 'expected {"token": "..."} first, under 1 KB'}
        )
        await socket.close(code=4400, reason="bad hello")
        return None
    if "\x00" in hello["token"] or len(hello["token"]) > TOKEN_MAX_CHARS:
        await socket.send_json({"type": "error", "error": "token refused"})
        await socket.close(code=4401, reason="token refused")
        return None
    return hello
