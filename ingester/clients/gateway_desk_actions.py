"""What a desk's page asks the gateway besides its items and acks: place a call, the calls
placed and where each stands, set its presence, a card's last contacts. Each is one call to
the database by token (db/logic/75_gateway.sql); a refusal the person can act on (a number
that does not parse, too many calls, a presence that is none) is answered, not raised."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import psycopg

Call = Callable[..., Awaitable[list[tuple]]]  # Hub.call: a named gateway query


async def answer(call: Call, token: str, socket, message: dict) -> None:
    if "dial" in message:  # click-to-call: the desk places a call
        await _dial(call, token, socket, message["dial"])
    elif "presence" in message:  # the desk is away, in do not disturb, or available
        ask = message["presence"]
        try:
            rows = await call("gateway_set_presence", token, str(ask["state"]), ask.get("until"))
            reply = {"type": "presence", "state": rows[0][0]}
        except (
            psycopg.errors.InvalidParameterValue,
            psycopg.errors.InsufficientPrivilege,
        ) as exc:
            reply = {"type": "presence", "error": exc.diag.message_primary}
        await socket.send_json(reply)
    elif "dials" in message:  # the desk's calls placed and where each stands
        rows = await call("gateway_dial_requests", token)
        await socket.send_json({"type": "dials", "requests": [_request(r) for r in rows]})
    elif "contacts" in message:  # the card asks for the caller's last contacts
        call_id = int(message["contacts"])
        rows = await call("gateway_contacts", token, call_id)
        await socket.send_json(
            {
                "type": "contacts",
                "call_id": call_id,
                "contacts": [
                    {
                        "call_id": r[0],
                        "started_at": r[1].isoformat() if r[1] else None,
                        "direction": r[2],
                        "outcome": r[3],
                        "answered_by": r[4],
                        "seconds": r[5],
                    }
                    for r in rows
                ],
            }
        )


async def _dial(call: Call, token: str, socket, ask: dict) -> None:
    """A refusal (a number that does not parse, too many calls) is the desk's to read."""
    number = str(ask["number"])
    client_id = int(ask["client_id"]) if ask.get("client_id") is not None else None
    try:
        (request_id,) = (await call("gateway_dial", token, number, client_id))[0]
    except (
        psycopg.errors.InvalidParameterValue,
        psycopg.errors.ProgramLimitExceeded,
        psycopg.errors.InsufficientPrivilege,
    ) as exc:
        await socket.send_json(
            {"type": "dial", "number": number, "error": exc.diag.message_primary}
        )
        return
    await socket.send_json({"type": "dial", "number": number, "request_id": str(request_id)})


def _request(row: tuple) -> dict:
    request_id, number, client_id, state, reason, requested_at, call_id, outcome = row
    return {
        "request_id": str(request_id),
        "number": number,
        "client_id": client_id,
        "state": state,
        "reason": reason,
        "requested_at": requested_at.isoformat(),
        "call_id": call_id,
        "call_outcome": outcome,
    }
