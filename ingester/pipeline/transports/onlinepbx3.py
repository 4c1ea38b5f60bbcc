"""onlinePBX WebSocket API 3.0: plain WebSocket, JSON text frames, key in the URL.

websockets' reconnecting `connect` iterator retries failed connects with jittered
exponential backoff (started at 0.5 s here, capped); a refused key (HTTP 4xx) is
fatal and raised. After a drop of an established connection we wait a jittered
moment and subscribe again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ingester.frame import Frame
from ingester.pipeline.metrics import Metrics
from ingester.pipeline.transports.common import MAX_FRAME_BYTES, PbxRefused, receive_text
from ingester.pipeline.transports.oversize import ReadingPastOversize, oversize_record
from ingester.redaction import Secret

SOURCE = "onlinepbx3"
log = logging.getLogger("pgcti.onlinepbx3")


def retry_or_raise(exc: Exception) -> Exception | None:
    """websockets' own rule (network errors and HTTP 500/502/503/504 are retried), plus the
    answers of a busy cloud service: 429 Too Many Requests and 408 Request Timeout."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (408, 429):
        log.warning(
            "the PBX answered HTTP %d; trying again after a pause", exc.response.status_code
        )
        return None
    return websockets.asyncio.client.process_exception(exc)


def url_with_key(url: str, key: Secret) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"key": key.reveal()})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


async def run(
    url: str,
    key: Secret,
    subscriptions: tuple[str, ...],
    deliver: Callable[[Frame], Awaitable[None]],
    metrics: Metrics,
) -> None:
    """Receive until cancelled. `deliver` may wait: nothing more is read meanwhile."""
    delays = partial(
        websockets.asyncio.client.backoff,
        initial_delay=0.5,
        min_delay=0.5,
        max_delay=15.0,
        factor=2.0,
    )
    request = json.dumps(
        {"command": "subscribe", "reqId": "pgcti", "data": {"eventGroups": list(subscriptions)}}
    )
    first = True
    try:
        async for ws in connect(
            url_with_key(url, key),
            reconnect_delays=delays,
            process_exception=retry_or_raise,
            max_size=MAX_FRAME_BYTES,
            create_connection=ReadingPastOversize,
            # Memory under a flood of big frames (make chaos --only flood): compression's
            # buffers and four queued frames took RSS from about 170 MB to 420 MB. A PBX's
            # frames are small JSON, and the connection is on a LAN or behind TLS anyway.
            max_queue=1,  # frames websockets itself buffers: with 16 MiB frames, 16 MiB at most
            compression=None,
            open_timeout=10,
            close_timeout=1,
            ping_interval=20,
            ping_timeout=20,
            logger=logging.getLogger("pgcti.websockets"),
        ):
            if not first:
                metrics.reconnects.labels("pbx").inc()
            first = False
            try:
                await ws.send(request)
                log.info(
                    "connected to %s, subscribing to %s",
                    urlsplit(url).netloc,
                    ", ".join(subscriptions),
                )
                metrics.pbx_connected.set(1)
                while True:
                    # Undecoded: websockets would close the connection (1007) on bad UTF-8,
                    # and lose every frame the PBX sends after it.
                    message = await ws.recv(decode=False)
                    record = oversize_record(ws, message, MAX_FRAME_BYTES, metrics)
                    text = receive_text(message) if record is None else record
                    await deliver(Frame(SOURCE, datetime.now(UTC), text))
            except websockets.ConnectionClosedOK:
                pass  # a clean close: reconnect, as after any other
            except websockets.ConnectionClosed as closed:
                log.warning("PBX connection dropped (%s); reconnecting", _why(closed))
            except asyncio.CancelledError:
                await asyncio.shield(
                    ws.close(1001, "ingester stopping")
                )  # a polite goodbye, not an error
                raise
            finally:
                metrics.pbx_connected.set(0)
            await asyncio.sleep(random.uniform(0.05, 0.5))
    except InvalidStatus as refused:
        status = refused.response.status_code
        raise PbxRefused(
            f"the PBX refused the connection with HTTP {status}"
            + (": check the API key and domain" if status in (401, 403) else "")
        ) from None


def _why(closed: websockets.ConnectionClosed) -> str:
    if closed.rcvd is not None:
        return f"closed by the PBX: code {closed.rcvd.code} {closed.rcvd.reason}".strip()
    if closed.sent is not None and closed.sent.code == 1009:
        return f"a fragmented message grew past the {MAX_FRAME_BYTES // 2**20} MiB limit"
    if closed.sent is not None:
        return f"closed by us: code {closed.sent.code} {closed.sent.reason}".strip()
    return "connection lost without a close frame"
