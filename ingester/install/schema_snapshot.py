"""db/schema.sql: pg_dump --schema-only of a freshly migrated database, noise stripped.

Noise is what differs between runs or servers without saying anything about the schema:
pg_dump's headers and session settings, and the attribute options that the server assigns
by itself rather than the schema's author (SERVER_ASSIGNED_ATTOPTIONS).
"""

from __future__ import annotations

import re
import subprocess

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester import embedded
from ingester.install import migrations
from ingester.queries import composed, query

# Lines that differ between runs or servers without saying anything about the schema.
_NOISE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config|\\(un)?restrict )")

# Attribute options (pg_attribute.attoptions) that a server writes on every column it
# creates, whatever the author asked for. Safe to leave out of a snapshot because they
# carry no intent: a CREATE never names them, ALTER ... SET and RESET of them are ignored,
# and the server gives each newly created column its own value.
# - pg_attver: Debian's PostgreSQL 15.20 (2026-11-13) puts `pg_attver=<number>` on each
#   column, a different number each time the column is created (seen: 22158952, then
#   22229984 for the next table). Neither the Debian changelog nor any public source
#   documents it; the behaviour above was observed on 15.20 itself (docs/lab/2026-12-06-pg-attver.md).
# Every other option, n_distinct set by pgcti or a DBA included, stays in the snapshot.
# unknown_server_options() turns a new one in a future release into a loud failure.
SERVER_ASSIGNED_ATTOPTIONS = frozenset({"pg_attver"})

# pg_dump writes a column's attoptions as
#   ALTER TABLE ONLY <table> ALTER COLUMN <column> SET (<name>=<value>, ...);
_COLUMN_OPTIONS = re.compile(r"^(ALTER TABLE ONLY .+ ALTER COLUMN .+ SET \()(.*)(\);)$")
_OPTION = re.compile(r"([a-z_][a-z0-9_]*)=('(?:[^']|'')*'|[^,]*)(?:, |$)")


def _without_server_options(line: str) -> str | None:
    """The line with the server's own attribute options left out; None if none are left."""
    match = _COLUMN_OPTIONS.match(line)
    if not match:
        return line
    options = [m.group(0).removesuffix(", ") for m in _OPTION.finditer(match.group(2))]
    kept = [o for o in options if o.split("=", 1)[0] not in SERVER_ASSIGNED_ATTOPTIONS]
    if len(kept) == len(options):
        return line
    return f"{match.group(1)}{', '.join(kept)}{match.group(3)}" if kept else None


def unknown_server_options(dsn: str) -> list[str]:
    """The options this server puts on a column nobody gave any, beyond the ones we know.

    A temporary table is created and rolled back: nothing is left behind."""
    with psycopg.connect(dsn) as conn:
        conn.execute(query("create_option_probe"))
        rows = conn.execute(query("option_probe_options")).fetchall()
        conn.rollback()
    return sorted(
        option for (option,) in rows if option.split("=", 1)[0] not in SERVER_ASSIGNED_ATTOPTIONS
    )


def check_server_options(dsn: str) -> None:
    """Refuse to compare snapshots on a server that assigns options we do not know."""
    unknown = unknown_server_options(dsn)
    if unknown:
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        raise RuntimeError(
            f"PostgreSQL {version} puts options on new columns by itself that pgcti's schema "
            f"snapshots do not know: {', '.join(unknown)}. Find out what they mean and, if "
            "the server assigns them rather than the schema's author, add them to "
            "SERVER_ASSIGNED_ATTOPTIONS in ingester/install/schema_snapshot.py"
        )


def dump(dsn: str, owners: bool = False, schemas: tuple[str, ...] = ("cti",)) -> str:
    """The schema of pgcti's schemas (or others); with ``owners``, who owns each object too."""
    check_server_options(dsn)
    params = conninfo_to_dict(dsn)
    args = [
        str(embedded.bin_dir() / "pg_dump"),
        "--schema-only",
        *([] if owners else ["--no-owner"]),
        *(f"--schema={schema}" for schema in schemas),
        "--dbname",
        dsn,
    ]
    out = subprocess.run(
        args,
        check=True,
        capture_output=True,
        text=True,
        env={"PGPASSWORD": params.get("password", ""), "PATH": "/usr/bin:/bin"},
    )
    lines = [
        kept
        for line in out.stdout.splitlines()
        if not _NOISE.match(line) and (kept := _without_server_options(line)) is not None
    ]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def snapshot(server_dsn: str) -> str:
    """Migrate a scratch database on the same server, dump it, drop it."""
    scratch = "pgcti_schema_snapshot"
    create = composed("create_database", scratch)
    drop = composed("drop_database", scratch)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(create)
    try:
        scratch_dsn = make_conninfo(server_dsn, dbname=scratch)
        migrations.apply(scratch_dsn)  # pgcti alone, as a CRM's database gets it
        return dump(scratch_dsn)
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(drop)
