"""Apply and roll back db/migrations through yoyo's Python API, under yoyo's lock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

# yoyo's own bookkeeping tables live here, apart from the product's schema `cti`,
# so that rolling back everything leaves no `cti` objects and no tables in `public`.
BOOKKEEPING_SCHEMA = "pgcti_migrations"


def migrations_dir() -> Path:
    override = os.environ.get("PGCTI_MIGRATIONS")
    if override:
        return Path(override)
    # db/migrations, reached through the package's link in a checkout and copied into a wheel.
    return Path(__file__).resolve().parent / "sql" / "migrations"


def yoyo_uri(dsn: str) -> str:
    """yoyo wants a URL with driver `postgresql+psycopg`; every libpq parameter rides as a query arg."""
    params = conninfo_to_dict(dsn)
    dbname = params.pop("dbname", "")
    params["schema"] = BOOKKEEPING_SCHEMA
    return f"postgresql+psycopg:///{quote(dbname)}?{urlencode(params)}"


@contextmanager
def _backend(dsn: str) -> Iterator:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {BOOKKEEPING_SCHEMA}")
    backend = get_backend(yoyo_uri(dsn))
    try:
        yield backend
    finally:
        backend.connection.close()


def extra_dirs() -> list[str]:
    """A DBA's own migrations (adapter overrides), applied together with pgcti's."""
    return [d for d in os.environ.get("PGCTI_EXTRA_MIGRATIONS", "").split(os.pathsep) if d]


def _all():
    return read_migrations(str(migrations_dir()), *extra_dirs())


def apply(dsn: str) -> list[str]:
    """Apply what is pending; return the ids applied (empty when up to date)."""
    with _backend(dsn) as backend, backend.lock():
        pending = backend.to_apply(_all())
        backend.apply_migrations(pending)
        return [m.id for m in pending]


def rollback(dsn: str, count: int | None = None) -> list[str]:
    """Roll back the newest ``count`` applied migrations (all when None)."""
    with _backend(dsn) as backend, backend.lock():
        applied = backend.to_rollback(_all())
        chosen = applied if count is None else applied[:count]
        backend.rollback_migrations(chosen)
        return [m.id for m in chosen]


def listing(dsn: str) -> list[tuple[str, bool]]:
    with _backend(dsn) as backend:
        migrations = _all()
        applied = {m.id for m in backend.to_rollback(migrations)}
        return [(m.id, m.id in applied) for m in migrations]
