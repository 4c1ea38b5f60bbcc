"""A recording onlinePBX keeps: its short-lived signed link is asked for when a person
wants to listen (never in advance, never stored), and the file is passed through to the
browser, range requests and all, so that the link itself never leaves the gateway: it is
not shown, logged or kept (docs/gateway.md#recordings)."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from starlette.responses import JSONResponse, Response, StreamingResponse

from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi, Refused, Unreachable

log = logging.getLogger("pgcti.gateway")
PASSED_ON = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges")
CHUNK = 65536
TIMEOUT = 30.0


async def play(api: OnlinepbxApi | None, call_uuid: str, asked_range: str | None) -> Response:
    """The recording of the call `call_uuid`, or a JSON error a browser can show."""
    if api is None:
        return _error(404, "this gateway does not ask onlinePBX for recordings (--onlinepbx-api)")
    try:
        link = await api.record_link(call_uuid)
    except (Refused, Unreachable) as exc:
        log.warning("onlinePBX gave no recording link: %s", exc)
        return _error(502, f"onlinePBX did not give the recording: {exc}")
    if link is None:
        return _error(404, "onlinePBX has no recording of this call")
    # A link elsewhere than the API's own scheme (https, or the simulator's http) is not followed.
    if urlsplit(link).scheme not in {"https", urlsplit(api.base).scheme}:
        return _error(502, "onlinePBX gave a link that is not https")
    try:
        upstream = await asyncio.to_thread(_open, link, asked_range)
    except urllib.error.HTTPError as exc:
        return _error(502, f"onlinePBX refused its own link (HTTP {exc.code}); try again")
    except (urllib.error.URLError, TimeoutError) as exc:
        return _error(502, f"onlinePBX's file did not come: {type(exc).__name__}")
    headers = {name: upstream.headers[name] for name in PASSED_ON if upstream.headers[name]}

    async def body():
        try:
            while chunk := await asyncio.to_thread(upstream.read, CHUNK):
                yield chunk
        finally:
            upstream.close()

    return StreamingResponse(body(), status_code=upstream.status, headers=headers)


def _open(link: str, asked_range: str | None):
    headers = {"Range": asked_range} if asked_range else {}
    return urllib.request.urlopen(urllib.request.Request(link, headers=headers), timeout=TIMEOUT)


def _error(status: int, words: str) -> JSONResponse:
    return JSONResponse({"error": words}, status_code=status)
