"""onlinePBX's HTTP API: `call/now` (click-to-call) and a recording's signed link.

`POST {api}/auth.json` with the API key (`auth_key`) gives `key_id` and `key`; later
requests carry the header `x-pbx-authentication: {key_id}:{key}`. `POST {api}/call/now.json`
with `from` (the desk's extension) and `to` (the number) rings the extension first, then
the number; `status: "1"` means accepted. The answer names no call, so the call is found
by number and time (db/logic/54_dialing.sql). `POST {api}/mongo_history/search.json` with
a call's `uuid` and `download=1` answers a short-lived signed link to its recording in
`data`, asked for when a person wants to hear it, never in advance (the gateway). A
session key that stops working is asked for again, once. The API key, the session key
and a signed link never appear in a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ingester.redaction import Secret

log = logging.getLogger("pgcti.dial")
TIMEOUT = 10.0


class Unreachable(Exception):
    """The request did not reach the API (no connection): nothing was sent."""


class Refused(Exception):
    """The API answered, and not with success: its words, for the request's reason."""


@dataclass
class OnlinepbxApi:
    base: str  # https://api2.onlinepbx.ru/<domain>
    key: Secret
    _session: tuple[str, str] | None = None

    async def call_now(self, extension: str, number: str) -> None:
        """Raises Unreachable (nothing sent), Refused (the API said no), or any other
        error after the request may have gone (the outcome is then unknown)."""
        await self._ask("call/now.json", {"from": extension, "to": number})

    async def record_link(self, call_uuid: str) -> str | None:
        """The signed link to a call's recording, None when the PBX has none."""
        answer = await self._ask("mongo_history/search.json", {"uuid": call_uuid, "download": "1"})
        data = answer.get("data")
        link = data[0] if isinstance(data, list) and data else data
        return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None

    async def _ask(self, path: str, form: dict[str, str]) -> dict:
        """One method of the API with the session key; its answer when `status` is 1."""
        for attempt in (1, 2):
            if self._session is None:
                self._session = await self._auth()
            key_id, key = self._session
            answer = await self._post(path, form, {"x-pbx-authentication": f"{key_id}:{key}"})
            if str(answer.get("status")) == "1":
                return answer
            if attempt == 1 and _is_auth_error(answer):
                self._session = None  # the session key expired: one more try with a new one
                continue
            raise Refused(_words(answer))
        raise AssertionError("unreachable")

    async def _auth(self) -> tuple[str, str]:
        answer = await self._post("auth.json", {"auth_key": self.key.reveal()}, {})
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        if str(answer.get("status")) != "1" or not data.get("key_id") or not data.get("key"):
            raise Refused(f"the API refused the key: {_words(answer)} (check PGCTI_PBX_KEY)")
        return str(data["key_id"]), str(data["key"])

    async def _post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> dict:
        return await asyncio.to_thread(self._post_now, path, form, headers)

    def _post_now(self, path: str, form: dict[str, str], headers: dict[str, str]) -> dict:
        request = urllib.request.Request(
            f"{self.base.rstrip('/')}/{path}",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                body = response.read(65536)
        except urllib.error.HTTPError as exc:
            raise Refused(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            # Refused, or no such host: no connection was made, so nothing was sent. Any
            # other failure may come after the request went: the outcome is unknown.
            if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
                raise Unreachable(f"cannot reach {self.base}: {exc.reason}") from None
            raise
        try:
            answer = json.loads(body)
        except ValueError:
            raise Refused(f"not JSON: {body[:80]!r}") from None
        return answer if isinstance(answer, dict) else {"comment": f"not an object: {body[:80]!r}"}


def _is_auth_error(answer: dict) -> bool:
    words = _words(answer).lower()
    return "auth" in words or "key" in words


def _words(answer: dict) -> str:
    text = (
        answer.get("comment")
        or answer.get("errorCode")
        or answer.get("message")
        or "no reason given"
    )
    return "".join(c for c in str(text) if c.isprintable())[:200]
