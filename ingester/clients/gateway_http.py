"""The gateway's plain HTTP endpoints, beside its WebSocket: GET /route (a cloud PBX asks
which extension rings first, with a router token) and GET /recording/<call_id> (a call's
recording, for a desk that may hear it or a supervisor). Each asks the database through
the gateway's pool (`call`), which decides and logs; this module only moves bytes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import psycopg
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from ingester.clients import recording_links
from ingester.clients.recordings import RecordingsFolder
from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi

log = logging.getLogger("pgcti.gateway")
ROUTE_SECONDS = 0.5  # a PBX asking /route waits no longer: then its own dialplan
Call = Callable[..., Awaitable[list[tuple]]]  # Hub.call: a named gateway query


async def route(call: Call, request) -> Response:
    """GET /route?caller=...&dialled=...: which extension a cloud PBX rings first (db/logic/
    58_routing.sql), for a router token (header `Authorization: Bearer <token>`, or
    `token=` for a PBX that can only set the URL). JSON, or `format=text`: the extension
    alone, an empty line for "your own dialplan". The PBX never waits on the CRM for long:
    past ROUTE_SECONDS, or with the database away, the answer is "your own dialplan"."""
    params = request.query_params
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    token = token or params.get("token", "")
    caller, dialled = params.get("caller"), params.get("dialled")
    if not token or caller is None:
        return JSONResponse({"error": "give caller= and a router token"}, status_code=400)
    try:
        # Shielded: a late answer still comes back (and its connection to the pool); the PBX
        # has gone on by then.
        asked = asyncio.ensure_future(call("gateway_route", token, caller, dialled))
        asked.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen
        rows = await asyncio.wait_for(asyncio.shield(asked), ROUTE_SECONDS)
        extension, reason = rows[0]
    except psycopg.errors.InvalidAuthorizationSpecification as exc:
        return JSONResponse({"error": exc.diag.message_primary}, status_code=401)
    except (TimeoutError, psycopg.Error) as exc:
        log.warning(
            "a routing question went unanswered (%s): the PBX uses its own dialplan",
            type(exc).__name__,
        )
        extension, reason = None, f"pgcti did not answer within {ROUTE_SECONDS:g} s"
    if params.get("format") == "text":
        return PlainTextResponse((extension or "") + "\n")
    return JSONResponse({"extension": extension, "reason": reason})


async def recording(
    call: Call, folder: RecordingsFolder | None, pbx_api: OnlinepbxApi | None, request
) -> Response:
    """GET /recording/<call_id>: the call's recording for a desk that was on the call (or
    the client's manager) or a supervisor token (db/logic/59_recordings.sql), with range
    requests; every request logged in the database. The token comes in the header
    `Authorization: Bearer`, or `token=` (an <audio> element sets no header). Asterisk's
    files come from the recordings folder, onlinePBX's through its API (recording_links)."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    token = token or request.query_params.get("token", "")
    try:
        rows = await call("gateway_recording", token, request.path_params["call_id"])
    except psycopg.errors.InvalidAuthorizationSpecification as exc:
        return JSONResponse({"error": exc.diag.message_primary}, status_code=401)
    source, name, allowed, why = rows[0]
    if not allowed:
        return JSONResponse({"error": why}, status_code=403 if "not on the call" in why else 404)
    if source.startswith("onlinepbx"):
        return await recording_links.play(pbx_api, name, request.headers.get("range"))
    if folder is None:
        return JSONResponse({"error": "this gateway serves no recordings (--recordings-dir)"}, 404)
    path = folder.file_of(name)
    if path is None:
        log.warning("a recording's file is not in the recordings folder %s", folder.here)
        return JSONResponse({"error": "the recording's file is not in the gateway's folder"}, 404)
    return FileResponse(path, media_type=folder.media_type(path))
