"""Where the database is: --dsn, then PGCTI_DSN, then the embedded default (pgcti[demo])."""

from __future__ import annotations

import os
import re

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester import embedded


class NoDatabase(Exception):
    """No DSN was given and the embedded default server is not installed."""


def resolve_dsn(explicit: str | None = None) -> str:
    dsn = explicit or os.environ.get("PGCTI_DSN")
    if dsn:
        return dsn
    try:
        embedded.library()
    except ImportError:
        raise NoDatabase(
            "no database given: pass --dsn or set PGCTI_DSN (the embedded default server "
            "comes with `pip install 'pgcti[demo]'`)"
        ) from None
    return embedded.start()


NO_DSN = (
    "no database given: pass --dsn or set PGCTI_DSN (or dsn in the config file); a service "
    "never guesses its database (--embedded uses the demo's embedded server, from pgcti[demo])"
)


def check_dsn(dsn: str) -> str:
    """The DSN if libpq can read it; else a one-line NoDatabase (without the password)."""
    try:
        conninfo_to_dict(dsn)
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        if "invalid connection option" not in reason:  # the fragment quoted may be a password
            reason = re.sub(r'"[^"]*"', '"..."', reason)
        raise NoDatabase(
            f"the DSN is not valid ({reason}): see the libpq connection string docs"
        ) from None
    return dsn


def service_dsn(explicit: str | None, embedded: bool) -> str:
    """For the service commands: --dsn or PGCTI_DSN, or the embedded server only when asked."""
    dsn = explicit or os.environ.get("PGCTI_DSN")
    if dsn:
        return check_dsn(dsn)
    if not embedded:
        raise NoDatabase(NO_DSN)
    return resolve_dsn()


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
