"""The `pgcti` command: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import os
import sys

from ingester import database, embedded, migrations


def _add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        help="libpq DSN of an existing server (default: $PGCTI_DSN, "
        "else the embedded server, started on demand)",
    )


def cmd_db(args: argparse.Namespace) -> int:
    if args.action == "start":
        dsn = embedded.start()
        print(f"embedded PostgreSQL running, data in {embedded.pgdata()}")
        print(dsn)
    elif args.action == "stop":
        stopped = embedded.stop()
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    elif args.action == "status":
        st = embedded.status()
        if st.running:
            print(f"running (pid {st.pid}), data in {st.pgdata}\n{st.dsn}")
        else:
            print(f"stopped, data in {st.pgdata}")
            return 3  # like `pg_ctl status`: 3 means not running
    elif args.action == "url":
        print(embedded.start())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.include:
        os.environ["PGCTI_EXTRA_MIGRATIONS"] = os.pathsep.join(
            [*migrations.extra_dirs(), *args.include]
        )
    dsn = database.resolve_dsn(args.dsn)
    where = database.redact(dsn)
    if args.list:
        for mid, applied in migrations.listing(dsn):
            print(f"{'applied' if applied else 'pending'}  {mid}")
        return 0
    if args.rollback is not None:
        count = None if args.rollback == "all" else int(args.rollback)
        done = migrations.rollback(dsn, count)
        print(f"rolled back {len(done)} migration(s) on {where}")
    else:
        done = migrations.apply(dsn)
        print(
            f"applied {len(done)} migration(s) on {where}"
            if done
            else f"database is up to date ({where})"
        )
    for mid in done:
        print(f"  {mid}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ingester import schema_snapshot

    sys.stdout.write(schema_snapshot.snapshot(database.resolve_dsn(args.dsn)))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    import psycopg

    dsn = database.resolve_dsn(args.dsn)
    with psycopg.connect(dsn) as conn:
        events, processed, ignored, failed = conn.execute("SELECT * FROM cti.rebuild()").fetchone()
    print(
        f"rebuilt from {events} raw events: {processed} processed, {ignored} ignored, {failed} failed;"
        " no commands were sent"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgcti", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("db", help="manage the embedded default PostgreSQL server")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("migrate", help="apply the database migrations (idempotent)")
    _add_dsn(p)
    p.add_argument(
        "--include",
        metavar="DIR",
        action="append",
        default=[],
        help="also apply your own migrations from DIR (adapter overrides); "
        "repeatable; or set PGCTI_EXTRA_MIGRATIONS",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="list migrations and whether applied")
    group.add_argument(
        "--rollback",
        metavar="N|all",
        nargs="?",
        const="1",
        help="roll back the newest N migrations (default 1), or all",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("rebuild", help="re-derive calls from the raw event log (sends no commands)")
    _add_dsn(p)
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser(
        "schema", help="print the schema of a freshly migrated scratch database (make schema)"
    )
    _add_dsn(p)
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
