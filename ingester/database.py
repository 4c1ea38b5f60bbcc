"""Where the database is: --dsn, then PGCTI_DSN, then the embedded default (pgcti[demo])."""

from __future__ import annotations

import os

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class NoDatabase(Exception):
    """No DSN was given and the embedded default server is not installed."""


def resolve_dsn(explicit: str | None = None) -> str:
    dsn = explicit or os.environ.get("PGCTI_DSN")
    if dsn:
        return dsn
    try:
        from ingester import embedded

        embedded.library()
    except ImportError:
        raise NoDatabase(
            "no database given: pass --dsn or set PGCTI_DSN (the embedded default server "
            "comes with `pip install 'pgcti[demo]'`)"
        ) from None
    return embedded.start()


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "<unparseable DSN>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)


def with_user(dsn: str, user: str, dbname: str | None = None) -> str:
    """The same server as ``dsn`` but another login (and optionally another database)."""
    params = conninfo_to_dict(dsn)
    params["user"] = user
    params.pop("password", None)
    if dbname:
        params["dbname"] = dbname
    return make_conninfo(**params)
