"""`make bench`: throughput and lookup scaling, each reported as a ratio measured in one run.

    python -m tests.bench.run [--frames 200000] [--clients 1000000] [--json bench-results.json]

Runs on the embedded default server (or PGCTI_TEST_DSN / --dsn) in a scratch database
it creates and drops. Nothing here asserts a speed; it measures and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

import psycopg

from ingester import embedded
from ingester.queries import query
from tests.bench.workload import (
    RAW_LOG_INSERT,
    RAW_LOG_SETUP,
    frames_for,
    insert_batches,
    log,
    machine,
    scratch_database,
    seed_crm,
)

# The ingester's arrays, in binary, into a trigger-less copy of the table: no parse, no key.
BARE_INSERT = """
INSERT INTO bench.raw_copy (source, received_at, body)
SELECT * FROM unnest(%(sources)b::text[], %(received)b::timestamptz[], %(bodies)b::text[])
"""

# The floor of any design that runs SQL per frame: a row trigger that parses the frame and
# does a single upsert keyed by its call. The pipeline runs about a dozen statements per frame.
FLOOR_SETUP = """
CREATE TABLE bench.raw_floor (LIKE bench.raw_copy INCLUDING DEFAULTS INCLUDING IDENTITY);
CREATE TABLE bench.floor_call (call_key text PRIMARY KEY, frames int NOT NULL);
CREATE FUNCTION bench.tg_floor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench.floor_call AS c VALUES (coalesce(NEW.body::jsonb -> 'data' ->> 'call_uuid', ''), 1)
    ON CONFLICT (call_key) DO UPDATE SET frames = c.frames + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER floor AFTER INSERT ON bench.raw_floor FOR EACH ROW EXECUTE FUNCTION bench.tg_floor();
"""
FLOOR_INSERT = BARE_INSERT.replace("bench.raw_copy", "bench.raw_floor")

# Baseline (b), the writes-only floor: every row the pipeline wrote, written again set-based
# into copies of its tables (same indexes, no triggers, no logic), in as many transactions
# as the pipeline had batches.
WRITTEN_TABLES = [
    "raw_event",
    "event_note",
    "call",
    "call_leg",
    "call_bridge",
    "call_transfer",
    "outbox",
]


def other_source(dsn: str, protocol: str, count: int, clients: int, batch: int) -> tuple:
    """The same kind of calls from another PBX source: its frames, its raw log alone and its
    full pipeline in events/s (both go frame by frame: calls found through what is stored)."""
    rows = frames_for(count, clients, seed={"asterisk": 5}.get(protocol, 6), protocol=protocol)
    raw_log = insert_batches(dsn, RAW_LOG_INSERT, rows, batch)
    pipeline = insert_batches(dsn, query("insert_raw_events"), rows, batch)
    log(
        f"  {protocol}, {len(rows):,} frames: raw log alone {raw_log:,.0f} events/s,"
        f" full pipeline {pipeline:,.0f} events/s"
    )
    return rows, raw_log, pipeline


def writes_only(dsn: str, transactions: int) -> float:
    """Events per second of the writes-only floor (baseline b), over the rows in the database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        sizes = {}
        for table in WRITTEN_TABLES:
            # Numbered sources (not timed), and empty copies with the same indexes.
            conn.execute(
                f"CREATE TABLE bench.src_{table} AS SELECT row_number() OVER () AS n, * FROM cti.{table}"
            )
            conn.execute(f"CREATE INDEX ON bench.src_{table} (n)")
            conn.execute(
                f"CREATE TABLE bench.w_{table} (LIKE cti.{table} INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
            sizes[table] = conn.execute(f"SELECT count(*) FROM bench.src_{table}").fetchone()[0]
        conn.execute("ANALYZE")
        columns = {
            table: ", ".join(
                name
                for (name,) in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                    " AND NOT attisdropped ORDER BY attnum",
                    [f"cti.{table}"],
                )
            )
            for table in WRITTEN_TABLES
        }
        started = time.perf_counter()
        for i in range(transactions):
            with conn.transaction():
                for table in WRITTEN_TABLES:
                    low, high = (
                        sizes[table] * i // transactions,
                        sizes[table] * (i + 1) // transactions,
                    )
                    conn.execute(
                        f"INSERT INTO bench.w_{table} ({columns[table]}) SELECT {columns[table]}"
                        f" FROM bench.src_{table} WHERE n > %s AND n <= %s",
                        [low, high],
                    )
        return sizes["raw_event"] / (time.perf_counter() - started)


def throughput(dsn: str, frames: int, clients: int, batch: int, warm_up: int) -> dict:
    rows = frames_for(warm_up + frames, clients, seed=3)
    warm, rows = rows[:warm_up], rows[warm_up:]
    grouped = frames_for(frames // 4, clients, seed=4, live_order=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA bench")
        conn.execute(
            "CREATE TABLE bench.raw_copy (LIKE cti.raw_event INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        conn.execute("ALTER TABLE bench.raw_copy ALTER COLUMN dedup_key DROP NOT NULL")
        conn.execute(FLOOR_SETUP)
        conn.execute(RAW_LOG_SETUP)
    log(
        f"throughput: {frames} frames, batches of {batch}; bare INSERT into a trigger-less copy first"
    )
    bare = insert_batches(dsn, BARE_INSERT, rows, batch)
    log(f"  bare INSERT: {bare:,.0f} events/s")
    floor = insert_batches(dsn, FLOOR_INSERT, rows, batch)
    log(f"  one-statement-per-frame trigger: {floor:,.0f} events/s")
    raw_log = insert_batches(dsn, RAW_LOG_INSERT, rows, batch)
    log(f"  raw log alone (parse, dedup index, no processing): {raw_log:,.0f} events/s")
    # Steady state, as a long-running ingester sees it: plans cached while the call tables
    # were empty pick sequential scans, until autovacuum's ANALYZE (within about a minute
    # on a live system) makes the server plan again.
    log(f"  warm-up: {warm_up:,} frames through the pipeline (not timed), then ANALYZE")
    insert_batches(dsn, query("insert_raw_events"), warm, batch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    quarters: list[float] = []
    pipeline = insert_batches(dsn, query("insert_raw_events"), rows, batch, quarters)
    log(f"  full pipeline, live order: {pipeline:,.0f} events/s")
    # The tables grow as the run goes on: a lookup whose plan reads a table whole shows here.
    growth = quarters[-1] / quarters[0]
    log(f"  its last quarter / its first: {growth:.2f} (1.0: no slower as the tables grow)")
    pipeline_grouped = insert_batches(dsn, query("insert_raw_events"), grouped, batch)
    log(
        f"  full pipeline, {len(grouped):,} frames with each call's frames back to back:"
        f" {pipeline_grouped:,.0f} events/s"
    )
    # Asterisk: the same kind of calls as AMI blocks, which go frame by frame (legs and
    # bridges are found through what is stored), against the raw log of the same blocks.
    ami, ami_raw_log, ami_pipeline = other_source(dsn, "asterisk", frames // 4, clients, batch)
    floor_writes = writes_only(dsn, transactions=max(1, len(rows) // batch))
    log(f"  writes-only floor (the same rows, set-based, no logic): {floor_writes:,.0f} events/s")
    # onlinePBX API 2.0 (after the floor, which writes again the rows stored so far): no call
    # ids, so each leg is matched to its call through the open legs and bridges stored.
    v2, v2_raw_log, v2_pipeline = other_source(dsn, "onlinepbx2", frames // 4, clients, batch)
    with psycopg.connect(dsn) as conn:
        outcome = dict(
            conn.execute("SELECT status, count(*) FROM cti.event_outcome GROUP BY 1").fetchall()
        )
        commands = conn.execute("SELECT count(*) FROM cti.outbox").fetchone()[0]
    return {
        "frames": frames,
        "warm_up_frames": warm_up,
        "batch": batch,
        "bare_insert_events_per_s": round(bare),
        "pipeline_events_per_s": round(pipeline),
        "pipeline_vs_bare": round(pipeline / bare, 4),
        "pipeline_calls_back_to_back_events_per_s": round(pipeline_grouped),
        "pipeline_last_vs_first_quarter": round(growth, 3),
        "one_statement_per_frame_events_per_s": round(floor),
        "one_statement_per_frame_vs_bare": round(floor / bare, 4),
        "raw_log_events_per_s": round(raw_log),
        "pipeline_vs_raw_log": round(pipeline / raw_log, 4),
        "writes_only_events_per_s": round(floor_writes),
        "pipeline_vs_writes_only": round(pipeline / floor_writes, 4),
        "asterisk_blocks": len(ami),
        "asterisk_raw_log_events_per_s": round(ami_raw_log),
        "asterisk_pipeline_events_per_s": round(ami_pipeline),
        "asterisk_pipeline_vs_raw_log": round(ami_pipeline / ami_raw_log, 4),
        "onlinepbx2_frames": len(v2),
        "onlinepbx2_raw_log_events_per_s": round(v2_raw_log),
        "onlinepbx2_pipeline_events_per_s": round(v2_pipeline),
        "onlinepbx2_pipeline_vs_raw_log": round(v2_pipeline / v2_raw_log, 4),
        "outcomes": outcome,
        "commands": commands,
    }


def time_lookups(small_dsn: str, small: int, large_dsn: str, large: int, samples: int) -> tuple:
    """Median microseconds per cti.crm_lookup in the small and the large CRM (half known,
    half unknown numbers). The two are sampled alternately, so machine noise hits both."""
    rng = random.Random(5)

    def number(clients: int, i: int) -> str:
        return (
            f"+79{rng.randrange(1, clients + 1):09d}"
            if i % 2
            else f"+7495{rng.randrange(10**7):07d}"
        )

    times: dict[str, list[float]] = {"small": [], "large": []}
    with (
        psycopg.connect(small_dsn, autocommit=True) as small_conn,
        psycopg.connect(large_dsn, autocommit=True) as large_conn,
    ):
        targets = [("small", small_conn, small), ("large", large_conn, large)]
        for _, conn, _ in targets:
            conn.execute("SELECT * FROM cti.crm_lookup('+70000000000')")  # plan and cache
        for i in range(samples):
            for name, conn, clients in targets:
                wanted = number(clients, i)
                started = time.perf_counter()
                conn.execute("SELECT * FROM cti.crm_lookup(%s)", [wanted]).fetchall()
                times[name].append(time.perf_counter() - started)
    return statistics.median(times["small"]) * 1e6, statistics.median(times["large"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("PGCTI_TEST_DSN"))
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--small-clients", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--warm-up", type=int, default=10_000, help="frames before timing starts")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="make bench-quick: 20,000 frames, 100,000 clients, no lookup scaling (a few minutes)",
    )
    parser.add_argument("--json", default="bench-results.json")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.clients, args.warm_up = 20_000, 100_000, 2_000

    server = args.dsn or embedded.start()
    results: dict = {"machine": machine(server)}
    log(f"machine: {results['machine']}")

    dsn = scratch_database(server, "pgcti_bench")
    small_dsn = None if args.quick else scratch_database(server, "pgcti_bench_small")
    try:
        if small_dsn is not None:
            results["lookup"] = lookup_scaling(dsn, small_dsn, args)
        else:
            with psycopg.connect(dsn, autocommit=True) as conn:
                seed_crm(conn, args.clients)
        results["throughput"] = throughput(dsn, args.frames, args.clients, args.batch, args.warm_up)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS pgcti_bench WITH (FORCE)")
            conn.execute("DROP DATABASE IF EXISTS pgcti_bench_small WITH (FORCE)")
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)
    report(results)
    print(f"\nwritten to {args.json}")
    # The one line a quick run is for (make bench-quick prints it last).
    print(f"pipeline/raw-log ratio: {results['throughput']['pipeline_vs_raw_log']:.3f}")


def lookup_scaling(dsn: str, small_dsn: str, args: argparse.Namespace) -> dict:
    log(f"lookup scaling: a CRM of {args.small_clients:,} clients and one of {args.clients:,}")
    with psycopg.connect(small_dsn, autocommit=True) as conn:
        seed_crm(conn, args.small_clients)
    with psycopg.connect(dsn, autocommit=True) as conn:
        log(f"  seeding {args.clients:,} clients (takes a while at millions)")
        seed_crm(conn, args.clients)
    small, large = time_lookups(small_dsn, args.small_clients, dsn, args.clients, args.lookups)
    log(f"  {args.small_clients:,} numbers: {small:.0f} us per lookup (median)")
    log(f"  {args.clients:,} numbers: {large:.0f} us per lookup (median)")
    return {
        "small_numbers": args.small_clients,
        "large_numbers": args.clients,
        "small_us": round(small, 1),
        "large_us": round(large, 1),
        "large_vs_small": round(large / small, 3),
    }


def report(results: dict) -> None:
    t = results["throughput"]
    rows = [
        ("bare INSERT (no trigger, no index), events/s", f"{t['bare_insert_events_per_s']:,}"),
        ("raw log alone (parse, dedup key), events/s", f"{t['raw_log_events_per_s']:,}"),
        ("writes-only floor (same rows, no logic), events/s", f"{t['writes_only_events_per_s']:,}"),
        ("full pipeline (live order), events/s", f"{t['pipeline_events_per_s']:,}"),
        ("pipeline / raw log (target >= 0.5)", f"{t['pipeline_vs_raw_log']:.3f}"),
        ("pipeline / writes-only floor (target >= 0.8)", f"{t['pipeline_vs_writes_only']:.3f}"),
        ("pipeline / bare INSERT", f"{t['pipeline_vs_bare']:.3f}"),
        ("pipeline, last quarter / first quarter", f"{t['pipeline_last_vs_first_quarter']:.2f}"),
        (
            "pipeline, calls back to back, events/s",
            f"{t['pipeline_calls_back_to_back_events_per_s']:,}",
        ),
        (
            "one statement per frame (trigger), events/s",
            f"{t['one_statement_per_frame_events_per_s']:,}",
        ),
        ("Asterisk AMI full pipeline, events/s", f"{t['asterisk_pipeline_events_per_s']:,}"),
        ("Asterisk AMI pipeline / its raw log", f"{t['asterisk_pipeline_vs_raw_log']:.3f}"),
        ("onlinePBX 2.0 full pipeline, events/s", f"{t['onlinepbx2_pipeline_events_per_s']:,}"),
        ("onlinePBX 2.0 pipeline / its raw log", f"{t['onlinepbx2_pipeline_vs_raw_log']:.3f}"),
    ]
    lk = results.get("lookup")
    if lk:
        rows += [
            (f"lookup, {lk['small_numbers']:,} numbers (us)", f"{lk['small_us']:.1f}"),
            (f"lookup, {lk['large_numbers']:,} numbers (us)", f"{lk['large_us']:.1f}"),
            ("lookup large / small", f"{lk['large_vs_small']:.3f}"),
        ]
    print()
    print(f"{'measure':<52}{'value':>14}")
    for name, value in rows:
        print(f"{name:<52}{value:>14}")


if __name__ == "__main__":
    main()
