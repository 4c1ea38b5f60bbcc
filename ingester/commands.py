"""What each `pgcti` sub-command does: its arguments in, the module that does the job
called, an exit code out (0 done, 1 failed, 2 a configuration error). The arguments
themselves are declared in cli.py."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from ingester import database, embedded
from ingester.clients import tokens
from ingester.clients.recordings import RecordingsFolder
from ingester.clients.watch import Watcher, WatchError, describe, dial, resolve_login
from ingester.install import (
    doctor,
    logic,
    migrate_report,
    migration_file,
    migrations,
    schema_snapshot,
)
from ingester.pipeline import config, service
from ingester.pipeline.transports.onlinepbx_http import OnlinepbxApi
from ingester.queries import query
from ingester.redaction import Secret, setup_logging


def _service_dsn(args: argparse.Namespace) -> str:
    dsn = database.service_dsn(args.dsn, args.embedded)
    print(f"pgcti {args.command}: database {database.redact(dsn)}", file=sys.stderr)
    return dsn


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
    migrations.include(args.include)
    dsn = _service_dsn(args)
    where = database.redact(dsn)
    try:
        return _migrate(args, dsn, where)
    except migration_file.MigrationFailed as exc:
        print(f"pgcti migrate: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except migrations.DependantsInTheWay as exc:
        print(f"pgcti migrate: nothing was changed: {exc}", file=sys.stderr)
        return 2
    except migrations.MigrateError as exc:
        print(f"pgcti migrate: nothing was changed: {exc}", file=sys.stderr)
        return 1


def cmd_crm_owner_sql(args: argparse.Namespace) -> int:
    migrations.include(args.include)
    dsn = _service_dsn(args)
    try:
        needed = migrations.owner_sql(dsn, rollback=args.rollback)
    except migrations.MigrateError as exc:
        print(f"pgcti crm-owner-sql: {exc}", file=sys.stderr)
        return 1
    what = "rolling back" if args.rollback else "installing"
    if not needed:
        print(f"-- nothing for the CRM's owner to run before {what}: pgcti's needs are met")
        return 0
    for owner in dict.fromkeys(n.owner for n in needed):
        print(f"-- Run as {owner}, the owner of these objects, before {what} pgcti's part")
        print(f"-- (for example: psql -U {owner} -d <database> -f this-file.sql)")
        print("\n".join(n.sql for n in needed if n.owner == owner))
    return 0


def cmd_adapters(args: argparse.Namespace) -> int:
    import psycopg

    if bool(args.names) == args.all:
        print("pgcti adapters reset: name the adapters, or give --all", file=sys.stderr)
        return 2
    dsn = _service_dsn(args)
    try:
        with psycopg.connect(dsn) as conn:
            done = logic.reset_adapters(conn, None if args.all else args.names)
            conn.commit()
    except logic.LogicError as exc:
        print(f"pgcti adapters reset: {exc}; nothing was changed", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(
            f"pgcti adapters reset: {exc.diag.message_primary}; nothing was changed",
            file=sys.stderr,
        )
        return 2
    for name in done:
        print(f"reset {name}: pgcti's placeholder")
    return 0


def _migrate(args: argparse.Namespace, dsn: str, where: str) -> int:
    if args.list:
        for mid, applied in migrations.listing(dsn):
            print(f"{'applied' if applied else 'pending'}  {mid}")
        return 0
    if args.rollback is not None:
        count = None if args.rollback == "all" else int(args.rollback)
        done = migrations.rollback(dsn, count, drop_dependants=args.drop_dependants)
        print(f"rolled back {len(done.migrations)} migration(s) on {where}")
        for mid in done.migrations:
            print(f"  {mid}")
        print(migrate_report.outside([], done.outside_removed, planned=False))
        for note in done.notes:
            print(f"  note: {note}")
        return 0
    step = migrations.plan if args.plan else migrations.apply
    outcome = step(dsn, reference_crm=args.with_reference_crm)
    print(migrate_report.render(outcome, where, planned=args.plan))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:

    # Without --dsn: the embedded server, which is what db/schema.sql is made on.
    sys.stdout.write(schema_snapshot.snapshot(args.dsn or embedded.start()))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    import psycopg

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

    setup_logging(args.log_level, args.log_json)
    try:
        settings = config.load(vars(args))
        return asyncio.run(service.run(settings))
    except config.ConfigError as exc:
        print(f"pgcti ingest: {exc}", file=sys.stderr)
        return 2


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio

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


def _dial(dsn: str, number: str, timeout: float) -> int:
    """`pgcti watch --dial`: one call placed from the desk, followed to its outcome."""
    words = {
        "requested": "asked: waiting for the PBX link (pgcti ingest --dial) to take it",
        "sent": "sent to the PBX: your phone rings first, pick it up",
        "answered": "you answered: the PBX is calling the number",
        "failed": "not placed",
        "expired": "not placed: nothing took it in time (is pgcti ingest --dial running?)",
        "unknown": "unknown: the PBX never said what became of it; not dialled again",
    }

    def show(request_id: str, now) -> None:
        line = f"dial request {request_id[:8]}: {words.get(now.state, now.state)}"
        if now.reason and now.state != "answered":
            line += f" ({now.reason})"
        if now.call_id:
            line += f"; call {now.call_id}" + (f": {now.call_outcome}" if now.call_outcome else "")
        print(line, flush=True)

    try:
        final = dial(dsn, number, show, timeout)
    except WatchError as exc:
        print(f"pgcti watch: {exc}", file=sys.stderr)
        return 2
    return 0 if final.state == "answered" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import time

    setup_logging(args.log_level)
    try:
        dsn = resolve_login(_service_dsn(args), args.workstation, args.extension, args.employee)
    except WatchError as exc:
        print(f"pgcti watch: {exc}", file=sys.stderr)
        return 2
    if args.dial:
        return _dial(dsn, args.dial, args.duration or 180.0)
    deadline = time.monotonic() + args.duration if args.duration else None

    def show(item) -> None:  # the time the call's event made it, in the local time zone
        print(
            f"{item.created_at.astimezone():%H:%M:%S} #{item.seq:<5} {describe(item)}", flush=True
        )

    def caught_up() -> None:
        print(
            "pgcti watch: caught up, waiting for the next item (Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )

    watcher = Watcher(dsn, show, on_caught_up=caught_up)
    signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
    watcher.run(
        until=lambda: (
            (args.count is not None and watcher.handled >= args.count)
            or (deadline is not None and time.monotonic() > deadline)
        )
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:

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

    try:
        from ingester.clients import report
    except ImportError:
        print("pgcti report: needs Plotly: pip install 'pgcti[report]'", file=sys.stderr)
        return 2

    dsn = _service_dsn(args)
    try:  # "today" is today where the report's days are
        today = datetime.now(ZoneInfo(args.time_zone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        print(f"pgcti report: unknown time zone {args.time_zone!r}", file=sys.stderr)
        return 2
    period = report.Period.default(today, args.time_zone)
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
    try:
        totals, waiting = report.write(
            dsn, period, Path(args.out), Path(args.missed_csv) if args.missed_csv else None
        )
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
        print(
            f"pgcti report: this database lacks pgcti's current views ({exc.diag.message_primary}):"
            " run `pgcti migrate` on it first",
            file=sys.stderr,
        )
        return 2
    print(
        f"report for {period.first} to {period.last} written to {Path(args.out).resolve()}: "
        + ", ".join(f"{k} {v}" for k, v in totals.items())
    )
    print(
        f"{waiting} missed call(s) not called back yet"
        + (
            f", listed in {Path(args.missed_csv).resolve()}"
            if args.missed_csv
            else " (--missed-csv lists them)"
        )
    )
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    dsn = _service_dsn(args)
    try:
        if args.action == "issue":
            kind = next(
                (k for k in ("wallboard", "router", "supervisor") if getattr(args, k)), "desk"
            )
            valid = args.valid or {"wallboard": "30 days", "router": "365 days"}.get(
                kind, "12 hours"
            )
            secret = tokens.issue(dsn, args.desk, valid, kind)
            whose = {
                "wallboard": "the wallboard",
                "router": "the PBX's routing (/route)",
                "supervisor": "a supervisor (every recording)",
            }.get(kind, f"desk login {args.desk}")
            print(f"pgcti token: a token for {whose}, valid {valid}; shown once:", file=sys.stderr)
            print(secret)
        elif args.action == "list":
            print("\n".join(tokens.listing(dsn)))
        else:
            revoked = tokens.revoke(dsn, args.token_id, args.desk, args.wallboards)
            print(f"pgcti token: {revoked} live token(s) revoked")
    except tokens.TokenError as exc:
        print(f"pgcti token {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    try:
        from ingester.clients import gateway
    except ImportError:
        print(
            "pgcti gateway: needs Starlette and uvicorn: pip install 'pgcti[gateway]'",
            file=sys.stderr,
        )
        return 2
    dsn = _service_dsn(args)
    origins = set(args.allow_origin or [])
    pbx_api = None
    if args.onlinepbx_api:  # recordings kept by onlinePBX: its API, with the PBX's key
        try:
            key = config.read_key_file(Path(args.key_file)) if args.key_file else None
        except config.ConfigError as exc:
            print(f"pgcti gateway: {exc}", file=sys.stderr)
            return 2
        key = key or os.environ.get("PGCTI_PBX_KEY")
        if not key:
            print(
                "pgcti gateway: --onlinepbx-api needs the PBX's API key: set PGCTI_PBX_KEY or "
                "give --key-file (a file only you can read)",
                file=sys.stderr,
            )
            return 2
        pbx_api = OnlinepbxApi(args.onlinepbx_api, Secret(key))
    print(
        f"pgcti gateway: desks open http://{args.host}:{args.port}/#token=<token>", file=sys.stderr
    )
    gateway.run(
        dsn,
        args.host,
        args.port,
        origins,
        args.card_url or "",
        max_pending=args.max_pending,
        max_pending_per_address=args.max_pending_per_address,
        recordings=(
            RecordingsFolder(Path(args.recordings_dir), args.recordings_pbx_dir)
            if args.recordings_dir
            else None
        ),
        pbx_api=pbx_api,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from ingester.demo.run import DemoError, run

    setup_logging("WARNING")
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True)  # plain lines for logs and pipes
    try:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        return asyncio.run(
            run(
                args.duration,
                args.rate,
                seed,
                args.dsn,
                console,
                args.pbx,
                web=args.web,
                history_days=args.history_days,
            )
        )
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
