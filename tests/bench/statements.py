"""Where the pipeline's time goes, statement by statement (issue 12, part 5).

    python -m tests.bench.statements [--batch 1] [--frames 2000] [--clients 100000]
                                     [--pbx onlinepbx3|asterisk|onlinepbx2] [--json bench-statements.json]

Frames of the scenario mix, in live order, go in as the ingester sends them (`--batch`
frames per INSERT: 1 is a quiet site's lone frame, 5 about what a batch holds at 1,000
events/s, 500 a backlog), after 5,000 frames in batches that put calls in flight and make
the plans. pg_stat_statements tracks every statement, nested ones included, and the
largest are printed per frame. A statement's time includes the statements of the
functions it calls, so the top lines hold the ones below them, and tracking slows each
statement: compare shares, not microseconds with the other benchmarks. The server must
load pg_stat_statements; this says how when it does not. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os

import psycopg
from psycopg import sql

from ingester import embedded
from ingester.queries import query
from tests.bench.workload import (
    frames_for,
    insert_batches,
    log,
    machine,
    scratch_database,
    seed_crm,
)

WARM_UP, SHOWN = 5000, 30
NOT_LOADED = """pg_stat_statements is not loaded by the server. As a superuser:
    ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements';
then restart the server (the embedded one: .venv/bin/pgcti db stop; this starts it again),
and afterwards ALTER SYSTEM RESET shared_preload_libraries and restart it again."""


def statement_profile(dsn: str, frames: int, clients: int, batch: int, protocol: str) -> dict:
    rows = frames_for(WARM_UP + frames, clients, seed=3, protocol=protocol)
    log(f"warm-up: {WARM_UP:,} frames in batches of 500")
    insert_batches(dsn, query("insert_raw_events"), rows[:WARM_UP], 500)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # Every statement of the sessions that start from now on (the scratch database's own).
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET pg_stat_statements.track = 'all'").format(
                sql.Identifier(conn.info.dbname)
            )
        )
        conn.execute("SELECT pg_stat_statements_reset()")
    log(f"{frames:,} frames in batches of {batch}, every statement tracked")
    tracked = insert_batches(dsn, query("insert_raw_events"), rows[WARM_UP:], batch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            """SELECT regexp_replace(s.query, '\\s+', ' ', 'g'), s.calls, s.total_exec_time
                 FROM pg_stat_statements s
                WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND s.query NOT LIKE '%%pg_stat_statements%%'  -- any user: nested ones run as cti_owner
                ORDER BY s.total_exec_time DESC LIMIT %s""",
            (SHOWN,),
        ).fetchall()
        failed = conn.execute(
            "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
        ).fetchone()[0]
    assert failed == 0, f"{failed} frames failed: nothing measured"
    return {
        "pbx": protocol,
        "batch": batch,
        "frames": frames,
        "events_per_s_tracked": round(tracked),
        "statements": [
            {
                "statement": text,
                "calls_per_frame": calls / frames,
                "us_per_call": total * 1000 / calls,
                "us_per_frame": total * 1000 / frames,
            }
            for text, calls, total in found
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("PGCTI_TEST_DSN"))
    parser.add_argument("--batch", type=int, default=1, help="frames per INSERT (1: lone frames)")
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument(
        "--pbx", choices=["onlinepbx3", "asterisk", "onlinepbx2"], default="onlinepbx3"
    )
    parser.add_argument("--json", default="bench-statements.json")
    args = parser.parse_args()

    server = args.dsn or embedded.start()
    with psycopg.connect(server) as conn:
        if "pg_stat_statements" not in conn.execute("SHOW shared_preload_libraries").fetchone()[0]:
            raise SystemExit(NOT_LOADED)
    results: dict = {"machine": machine(server)}
    dsn = scratch_database(server, "pgcti_bench_statements")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed_crm(conn, args.clients)
        results["profile"] = profile = statement_profile(
            dsn, args.frames, args.clients, args.batch, args.pbx
        )
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS pgcti_bench_statements WITH (FORCE)")
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)
    print(
        f"\n{profile['pbx']} frames in batches of {profile['batch']}, statement by statement"
        f" ({profile['events_per_s_tracked']:,} events/s while tracked; a statement's time"
        " includes the functions it calls):"
    )
    print("  calls/frame   us/call  us/frame  statement")
    for s in profile["statements"]:
        print(
            f"  {s['calls_per_frame']:11.3f} {s['us_per_call']:9.1f} {s['us_per_frame']:9.1f}"
            f"  {s['statement'][:100]}"
        )
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
