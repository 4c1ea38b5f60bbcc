"""db/schema.sql: pg_dump --schema-only of a freshly migrated database, noise stripped."""

from __future__ import annotations

import re
import subprocess

from psycopg.conninfo import conninfo_to_dict

from ingester import embedded

# Lines that differ between runs or servers without saying anything about the schema.
_NOISE = re.compile(r"^(--|SET |SELECT pg_catalog\.set_config|\\(un)?restrict )")


def dump(dsn: str, owners: bool = False, schemas: tuple[str, ...] = ("cti",)) -> str:
    """The schema of pgcti's schemas (or others); with ``owners``, who owns each object too."""
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
    lines = [line for line in out.stdout.splitlines() if not _NOISE.match(line)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def snapshot(server_dsn: str) -> str:
    """Migrate a scratch database on the same server, dump it, drop it."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from ingester import migrations
    from ingester.queries import composed

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
