"""Named SQL kept in ingester/sql/queries.sql, so the Python stays free of SQL and of rules."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

from psycopg import sql

_NAME = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)


@cache
def _all() -> dict[str, str]:
    text = files("ingester").joinpath("sql", "queries.sql").read_text()
    parts = _NAME.split(text)[1:]  # name, body, name, body, ...
    return {name: body.strip() for name, body in zip(parts[::2], parts[1::2], strict=True)}


def query(name: str) -> str:
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in ingester/sql/queries.sql") from None


def composed(name: str, *identifiers: str) -> sql.Composed:
    """A named statement whose `{}` are identifiers (a channel, a role, a database)."""
    return sql.SQL(query(name)).format(*(sql.Identifier(i) for i in identifiers))
