"""Named SQL kept in ingester/sql/queries/, one file per part of the edge (the pipeline,
clients, migrate, the demo, doctor, report, the gateway), so the Python stays free of SQL
and of rules."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from psycopg import sql

_NAME = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)
# The SQL the package ships: queries/ here, and db/'s logic, migrations, upgrades and
# reference CRM, reached through the package's links in a checkout and copied into a wheel.
SQL_DIR = Path(__file__).resolve().parent / "sql"


@cache
def _all() -> dict[str, str]:
    found: dict[str, str] = {}
    folder = SQL_DIR / "queries"
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".sql"):
            continue
        parts = _NAME.split(path.read_text())[1:]  # name, body, name, body, ...
        for name, body in zip(parts[::2], parts[1::2], strict=True):
            if name in found:
                raise ValueError(f"query {name!r} is named twice in ingester/sql/queries/")
            found[name] = body.strip()
    return found


def query(name: str) -> str:
    try:
        return _all()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in ingester/sql/queries/") from None


def composed(name: str, *identifiers: str) -> sql.Composed:
    """A named statement whose `{}` are identifiers (a channel, a role, a database)."""
    return sql.SQL(query(name)).format(*(sql.Identifier(i) for i in identifiers))
