"""Asterisk Manager Interface: TCP (ami://USER@HOST:5038) or TLS (amis://), `Key: Value`
lines, a blank line ending each block.

After the banner we log in (`Action: Login`; the secret is the PBX key, never logged),
take `Response: Error` as a refusal (a wrong secret does not get better by retrying),
wait for `FullyBooted`, and send `Ping` every 20 s; a link that answers nothing for 60 s
counts as dropped. The logged-in session is lent to click-to-call (AmiLink): the answers to
its Originates are stored like events. Every event block is one raw frame, kept verbatim (repeated keys such
as `ChanVariable` and all): the database parses it (db/logic/30_raw_log.sql). We reconnect
with the same jittered backoff as the other sources, and say why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from ingester.frame import Frame
from ingester.pipeline.bounded import PREFIX as BOUNDED
from ingester.pipeline.bounded import bounded_body
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.transports.common import (
    DIAL_ACTION_PREFIX,
    MAX_FRAME_BYTES,
    NotSent,
    PbxRefused,
)
from ingester.redaction import Secret

SOURCE = "asterisk"
PING_EVERY = 20.0
SILENT_FOR = 60.0
BANNER_MAX = 256  # "Asterisk Call Manager/9.0.0": a peer that sends more is no AMI
EXCERPT = 80  # characters of a peer's text that a log line may quote, escaped
STEADY_AFTER = 30.0  # a session that lasted this long resets the backoff
LINE_LIMIT = MAX_FRAME_BYTES + 2  # a line as long as a whole frame is read whole
log = logging.getLogger("pgcti.asterisk")


class Dropped(Exception):
    """The link went away or went silent: reconnect."""


class AmiLink:
    """The logged-in session, for actions pgcti sends (click-to-call's Originate). Their
    answers carry an ActionID the transport stores like events (DIAL_ACTION_PREFIX)."""

    def __init__(self) -> None:
        self._writer: asyncio.StreamWriter | None = None
        self.up = asyncio.Event()

    def attach(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.up.set()

    def detach(self) -> None:
        self._writer = None
        self.up.clear()

    async def send(self, action: str) -> None:
        if self._writer is None or self._writer.is_closing():
            raise NotSent("the AMI link is down")
        self._writer.write(action.encode())
        await self._writer.drain()


def parse_url(url: str) -> tuple[str, int, str, bool]:
    """ami://USER@HOST:PORT or amis://USER@HOST:PORT -> host, port, user, tls."""
    parts = urlsplit(url)
    if parts.scheme not in ("ami", "amis") or not parts.hostname or not parts.username:
        raise ValueError(f"expected ami://USER@HOST:5038 or amis://USER@HOST:5039, not {url!r}")
    if parts.password:
        raise ValueError("put the AMI secret in PGCTI_PBX_KEY or a key file, not in the URL")
    default = 5039 if parts.scheme == "amis" else 5038
    return parts.hostname, parts.port or default, unquote(parts.username), parts.scheme == "amis"


def excerpt(text: str | bytes) -> str:
    """A peer's text fit for a log line: its first EXCERPT characters, control characters
    and other non-printable ones escaped (no ESC sequence reaches a terminal)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode() for c in text[:EXCERPT]
    )
    return shown + (f"... ({len(text)} characters)" if len(text) > EXCERPT else "")


async def read_banner(reader: asyncio.StreamReader) -> str:
    """The peer's first line, read BANNER_MAX bytes at most: a peer that sends more without
    a line end, or closes first, is a broken link (Dropped), retried like any other."""
    data = b""
    while b"\n" not in data:
        chunk = await reader.read(BANNER_MAX + 1 - len(data))
        if not chunk:
            raise Dropped(f"the peer closed before its banner ({excerpt(data)!s})")
        data += chunk
        if b"\n" not in data and len(data) > BANNER_MAX:
            raise Dropped(f"not an AMI banner: no line end in {BANNER_MAX} bytes ({excerpt(data)})")
    # Asterisk sends nothing after its banner until the login: what may follow is dropped.
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


async def read_block(reader: asyncio.StreamReader) -> str:
    """One block, verbatim (CRLF line ends, without the blank line that ends it). A block
    over MAX_FRAME_BYTES is read past, and what comes back is a bounded record of it (its
    size, SHA-256, beginning and why), which the raw log stores like any frame."""
    lines: list[str] = []
    size = 0
    digest = hashlib.sha256()
    longer = ""  # a line no reader buffer holds: only its length is known (at least)
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # a line longer than LINE_LIMIT: asyncio has dropped it; read on
            size += LINE_LIMIT
            longer = " (a line longer than that: the size is a lower bound)"
            continue
        if not raw:
            raise Dropped("the PBX closed the connection")
        # Bytes that are not UTF-8, and NUL (which PostgreSQL text cannot hold), are kept
        # as backslash escapes: the block is stored, parsed and processed all the same.
        line = raw.decode("utf-8", "backslashreplace").rstrip("\r\n").replace("\x00", "\\x00")
        if not line and not lines and not size:
            continue  # stray blank lines between blocks
        size += len(raw)
        digest.update(raw)
        if line and size <= MAX_FRAME_BYTES:
            lines.append(line)
        if not line:
            if size <= MAX_FRAME_BYTES:
                return "\r\n".join(lines)
            return bounded_body(
                f"an AMI block over {MAX_FRAME_BYTES // 2**20} MiB, read past{longer}",
                size,
                digest.hexdigest(),
                "\r\n".join(lines),
            )


def field(block: str, key: str) -> str | None:
    prefix = key.lower() + ":"
    for line in block.split("\r\n"):
        if line.lower().startswith(prefix):
            return line[len(prefix) :].strip()
    return None


async def run(
    url: str,
    key: Secret,
    deliver: Callable[[Frame], Awaitable[None]],
    metrics: Metrics,
    link: AmiLink | None = None,
) -> None:
    host, port, user, tls = parse_url(url)
    link = link or AmiLink()
    delay, first = 0.5, True
    gap = Gap()
    while True:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(  # a line may be as long as a whole frame
                    host, port, ssl=ssl.create_default_context() if tls else None, limit=LINE_LIMIT
                ),
                10,
            )
        except (OSError, TimeoutError) as exc:
            log.warning("cannot reach the AMI at %s:%d (%s); retrying", host, port, exc)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 15.0)
            continue
        started = time.monotonic()
        why = "the session ended"
        try:
            await _session(reader, writer, user, key, deliver, metrics, first, gap, link)
        except Dropped as dropped:
            why = str(dropped)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            # ValueError: a line past the reader's limit; a broken peer, not a person's mistake.
            why = excerpt(str(exc))
        finally:
            link.detach()
            metrics.pbx_connected.set(0)
            writer.close()
        gap.dropped(why)
        first = False
        # A link that held resets the backoff; a peer that breaks at once is tried less and
        # less often (a garbage banner made 3.6 reconnects a second before).
        if time.monotonic() - started >= STEADY_AFTER:
            delay = 0.5
        log.warning("AMI connection dropped (%s); reconnecting in %.1f s at most", why, delay)
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 15.0)


class Gap:
    """While the link is down the PBX goes on, and AMI replays nothing: what it sent then is
    lost. Said once the link is back, with its span, so an operator can tell which calls
    may lack their end (pgcti ends them after cti.config.stale_call_after)."""

    def __init__(self) -> None:
        self.since: datetime | None = None
        self.why = ""

    def dropped(self, why: str) -> None:
        if self.since is None:  # the first drop of a series of failed attempts
            self.since, self.why = datetime.now(UTC), why

    def restored(self, metrics: Metrics) -> None:
        if self.since is None:
            return
        now = datetime.now(UTC)
        seconds = (now - self.since).total_seconds()
        metrics.pbx_blind.inc(seconds)
        log.warning(
            "the AMI link was down for %.1f s (%s to %s UTC; %s): Asterisk does not replay "
            "events, so calls that rang, were answered or ended in that time were not seen; "
            "a call whose end was missed is ended after cti.config.stale_call_after",
            seconds,
            self.since.strftime("%H:%M:%S"),
            now.strftime("%H:%M:%S"),
            self.why,
        )
        self.since = None


async def _session(
    reader, writer, user: str, key: Secret, deliver, metrics, first: bool, gap: Gap, link: AmiLink
) -> None:
    try:
        banner = await asyncio.wait_for(read_banner(reader), 10)
    except TimeoutError:
        raise Dropped("no banner within 10 s") from None
    if not banner.startswith("Asterisk Call Manager"):
        raise Dropped(f"not an AMI banner: {excerpt(banner)}")
    writer.write(
        f"Action: Login\r\nActionID: pgcti-login\r\nUsername: {user}\r\n"
        f"Secret: {key.reveal()}\r\nEvents: call,agent,dialplan\r\n\r\n".encode()
    )
    await writer.drain()
    booted = False
    while True:  # the login's answer; events may come first
        block = await asyncio.wait_for(read_block(reader), 10)
        if field(block, "ActionID") == "pgcti-login":
            if field(block, "Response") != "Success":
                raise PbxRefused(
                    f"the AMI refused the login of {user!r}: {field(block, 'Message') or 'no reason'}"
                    " (check the user and secret in manager.conf)"
                )
            break
        booted = booted or field(block, "Event") == "FullyBooted"
    log.info("logged in to the AMI as %s (%s)", user, excerpt(banner))
    gap.restored(metrics)
    if not first:
        metrics.reconnects.labels("pbx").inc()
    metrics.pbx_connected.set(1)
    pinger = asyncio.create_task(_ping(writer))
    link.attach(writer)
    try:
        while True:
            try:
                block = await asyncio.wait_for(read_block(reader), SILENT_FOR)
            except TimeoutError:
                raise Dropped(f"nothing from the AMI for {SILENT_FOR:.0f}s") from None
            if field(block, "Event") is not None or block.startswith(BOUNDED):  # not a response
                if not booted and field(block, "Event") == "FullyBooted":
                    booted = True
                    log.info("the PBX is fully booted")
                await deliver(Frame(SOURCE, datetime.now(UTC), block))
            elif (field(block, "ActionID") or "").startswith(DIAL_ACTION_PREFIX):
                await deliver(Frame(SOURCE, datetime.now(UTC), block))  # an Originate's answer
            # other responses (Ping's Pong) only keep the link alive
    finally:
        pinger.cancel()


async def _ping(writer: asyncio.StreamWriter) -> None:
    n = 0
    while True:
        await asyncio.sleep(PING_EVERY)
        n += 1
        writer.write(f"Action: Ping\r\nActionID: pgcti-ping-{n}\r\n\r\n".encode())
        await writer.drain()
