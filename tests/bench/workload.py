"""What every benchmark starts from: a scratch database, a seeded CRM, frames of the
scenario mix, batches written as the ingester writes them, the machine they ran on, and
the raw log alone (the baseline the pipeline is compared with)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import time
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.frame import Frame
from ingester.install import migrations
from ingester.pipeline.writer import batch_params
from ingester.simulator.traffic import Traffic

# Baseline (a), the raw log alone: the same frames and batches, parsed and keyed as
# cti.ingest_frames_v1() does, into a copy of cti.raw_event with its indexes (the dedup
# key), and no processing.
RAW_LOG_SETUP = "CREATE TABLE bench.raw_log (LIKE cti.raw_event INCLUDING ALL)"
RAW_LOG_INSERT = """
INSERT INTO bench.raw_log (source, received_at, body, frame, dedup_key, parse_error)
SELECT p.source, p.received_at, p.body, p.frame, p.dedup_key, p.parse_error
  FROM cti.parse_frames(%(sources)b::text[], %(received)b::timestamptz[], %(bodies)b::text[]) p
 ORDER BY p.n
ON CONFLICT DO NOTHING
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def scratch_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(server, dbname=name)
    migrations.apply(dsn, reference_crm=True)
    return dsn


def seed_crm(conn: psycopg.Connection, clients: int, first: int = 0) -> None:
    """`clients` clients with one Russian number each, generated in SQL (fast at millions)."""
    if first == 0:
        conn.execute(
            "INSERT INTO pgcti_refcrm.company (name) SELECT 'Company ' || g FROM generate_series(1, 1000) g"
        )
        for ext in range(101, 131):
            conn.execute(
                "INSERT INTO pgcti_refcrm.employee (surname, extension, receives_call_notifications)"
                " VALUES (%s, %s, %s)",
                [f"Emp{ext}", str(ext), ext < 104],
            )
            conn.execute(
                "INSERT INTO pgcti_refcrm.workstation (name, extension) VALUES (%s, %s)",
                [f"desk-{ext}", str(ext)],
            )
    conn.execute(
        """INSERT INTO pgcti_refcrm.client (name, company_id, manager_id)
           SELECT 'Client ' || g, 1 + g %% 1000, 1 + g %% 30 FROM generate_series(%s::bigint, %s::bigint) g""",
        [first + 1, first + clients],
    )
    # Numbers in several spellings, normalised by the table's trigger as in real life.
    conn.execute(
        """INSERT INTO pgcti_refcrm.client_phone (client_id, raw)
           SELECT c.id, CASE c.id %% 3 WHEN 0 THEN '+7 9' || lpad((c.id)::text, 9, '0')
                                       WHEN 1 THEN '89' || lpad((c.id)::text, 9, '0')
                                       ELSE '8 (9' || substr(lpad((c.id)::text, 9, '0'), 1, 2) || ') '
                                            || substr(lpad((c.id)::text, 9, '0'), 3) END
             FROM pgcti_refcrm.client c WHERE c.id > %s""",
        [first],
    )
    conn.execute("ANALYZE")


def frames_for(
    count: int, clients: int, seed: int, live_order: bool = True, protocol: str = "onlinepbx3"
) -> list[dict]:
    """`count` frames of the scenario mix. In live order (the default) calls of real length
    overlap as a PBX sends them, about 1,000 frames/s; otherwise each call's frames come
    back to back, one call after another (the worst case for batching by call). protocol
    "asterisk": the same calls as AMI blocks."""
    rng = random.Random(seed)
    known = [f"+79{n:09d}" for n in rng.sample(range(1, clients + 1), min(5000, clients))]
    extensions = [str(e) for e in range(101, 131)]
    traffic = Traffic(seed, known, extensions, unknown_share=0.2, scale=1.0, protocol=protocol)
    now = time.time()
    rows: list[dict] = []

    def row(frame: dict | str) -> dict:
        body = frame if isinstance(frame, str) else json.dumps(frame)
        return {"source": protocol, "received_at": None, "body": body}

    if live_order:
        for _, frame in traffic.schedule(now, calls_per_second=118, total_calls=None):
            rows.append(row(frame))
            if len(rows) >= count:
                break
    while len(rows) < count:
        for _, frame in traffic.call(now):
            rows.append(row(frame))
    for row in rows:
        row["received_at"] = datetime.now(UTC)
    return rows[:count]


def insert_batches(
    dsn: str, statement: str, rows: list[dict], batch: int, quarters: list | None = None
) -> float:
    """Events per second, one transaction per batch, as the ingester writes. `quarters`, when
    given, gets the events per second of each quarter of the rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        marks = [started]
        for start in range(0, len(rows), batch):
            conn.execute(
                statement, batch_params([Frame(**row) for row in rows[start : start + batch]])
            )
            if (start + batch) * 4 // len(rows) > start * 4 // len(rows):
                marks.append(time.perf_counter())
        if quarters is not None:
            quarters.extend(len(rows) / 4 / (b - a) for a, b in itertools.pairwise(marks))
        return len(rows) / (time.perf_counter() - started)


def machine(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    info = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": version,
        "fsync": fsync,
    }
    try:
        out = subprocess.run(
            [str(embedded.bin_dir() / "pg_test_fsync"), "-s", "1", "-f", "/tmp/pgcti_fsync_test"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        line = next(line for line in out.splitlines() if "fdatasync" in line and "ops/sec" in line)
        info["pg_test_fsync_fdatasync"] = " ".join(line.split()[1:])
    except (OSError, StopIteration, subprocess.TimeoutExpired):
        info["pg_test_fsync_fdatasync"] = "unavailable"
    return info


def views_at_two_sizes(
    generate: str, reads: dict[str, str], what: str, name: str, argv: list[str] | None = None
) -> None:
    """The views' benchmarks (analytics, queues): `generate` (SQL, with %(calls)s) fills a
    scratch database per size; each of `reads` runs `--rounds` times, alternating between
    the sizes; prints the medians and the ratio large / small (and --json writes them)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    server = embedded.start()
    conns = {}
    for size in (args.small, args.large):
        log(f"generating {size:,} {what}")
        conns[size] = psycopg.connect(
            scratch_database(server, f"pgcti_bench_{name}_{size}"), autocommit=True
        )
        conns[size].execute("SET session_replication_role = replica")  # no triggers: made-up rows
        # Several statements: no parameters (simple protocol); the size is an int.
        conns[size].execute(generate.replace("%(calls)s", str(int(size))))
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for read, statement in reads.items():
            for size, conn in conns.items():
                started = time.perf_counter()
                conn.execute(statement).fetchall()
                times.setdefault((read, size), []).append(time.perf_counter() - started)
    results = []
    print(f"\n{'view (as it is read)':40} {args.small:>10,} {args.large:>12,}   ratio")
    for read in reads:
        small = statistics.median(times[(read, args.small)]) * 1000
        large = statistics.median(times[(read, args.large)]) * 1000
        print(f"{read:40} {small:8.1f} ms {large:10.1f} ms {large / small:7.1f}")
        results.append({"view": read, "small_ms": small, "large_ms": large})
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"small": args.small, "large": args.large, "results": results}, out, indent=2)
