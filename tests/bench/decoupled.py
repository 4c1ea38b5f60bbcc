"""Ingest decoupled from processing, measured against today's design (issue 12, part 3).

The same live-order frames, from the same warmed-up database (a template copied for each
run), two ways, alternating:
- inline (today): the ingester's INSERT stores and processes each batch of 500 in one
  transaction;
- decoupled: the INSERT only stores (the processing trigger disabled), while one processor
  session, on the other core, takes whatever has been stored since its last pass (at most
  `--chunk` frames) and processes it in rounds, as the trigger would, in a transaction of
  its own.
Each is timed until the last frame is processed. The processor follows ids, which is
right only for one ingester committing in order (the probe has one): a real design needs
a durable pending queue, whose cost is not in these figures, so they are the decoupled
design's best case. The commands both ways are compared, stream by stream.

`python -m tests.bench.decoupled [--chunk 5000] [--json bench-decoupled.json]` (about a
minute; part of `make bench`)."""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingester import embedded
from ingester.queries import query
from tests.bench.workload import frames_for, insert_batches, log, scratch_database, seed_crm

TEMPLATE = "pgcti_bench_decoupled"
PENDING = "SELECT coalesce(max(id), 0) FROM cti.raw_event"
IN_ROUNDS = """SELECT cti.process_in_rounds(array_agg(e ORDER BY e.id)) FROM cti.raw_event e
                WHERE e.id > %s AND e.id <= %s"""
FRAME_BY_FRAME = """SELECT cti.process_frame_by_frame(array_agg(e ORDER BY e.id))
                      FROM cti.raw_event e WHERE e.id > %s AND e.id <= %s"""
# As tests/rules/test_batch_processing.py compares them: surrogate ids depend on processing order.
COMMANDS = """SELECT o.target_kind, o.target_id, o.seq, o.type, c.pbx_call_id,
                     o.payload - 'call_id' - 'client_id' - 'task_id'
                FROM cti.outbox o JOIN cti.call c ON c.id = o.call_id ORDER BY 1, 2, 3"""


def copy_of_template(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    return make_conninfo(server, dbname=name)


def process_pending(dsn: str, until: int, chunk: int, passes: list[int]) -> None:
    """The processor: whatever is stored past its last pass, in rounds when it can be."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # as the trigger runs (65_processing.sql)
        conn.execute("SET jit = off")
        done = conn.execute(PENDING).fetchone()[0]
        while done < until:
            stored = conn.execute(PENDING).fetchone()[0]
            if stored == done:
                time.sleep(0.001)
                continue
            upto = min(stored, done + chunk)
            with conn.transaction():
                if not conn.execute(IN_ROUNDS, [done, upto]).fetchone()[0]:
                    conn.execute(FRAME_BY_FRAME, [done, upto])
            passes.append(upto - done)
            done = upto


def run_inline(dsn: str, rows: list[dict], batch: int) -> float:
    return insert_batches(dsn, query("insert_raw_events"), rows, batch)


def run_decoupled(dsn: str, rows: list[dict], batch: int, chunk: int) -> tuple[float, list]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE cti.raw_event DISABLE TRIGGER _500_process")
        first = conn.execute(PENDING).fetchone()[0]
    passes: list[int] = []
    processor = threading.Thread(
        target=process_pending, args=(dsn, first + len(rows), chunk, passes)
    )
    started = time.perf_counter()
    processor.start()
    insert_batches(dsn, query("insert_raw_events"), rows, batch)
    processor.join()
    return len(rows) / (time.perf_counter() - started), passes


def commands(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(COMMANDS).fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each design, alternating")
    parser.add_argument("--batch", type=int, default=500, help="frames per ingester INSERT")
    parser.add_argument("--chunk", type=int, default=5_000, help="most frames per processor pass")
    parser.add_argument("--json", default="bench-decoupled.json")
    args = parser.parse_args()
    server = embedded.start()
    log(f"template: {args.clients:,} clients, 3,000 frames through the pipeline, ANALYZE")
    dsn = scratch_database(server, TEMPLATE)
    rows = frames_for(3_000 + args.frames, args.clients, seed=3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn, args.clients)
    run_inline(dsn, rows[:3_000], args.batch)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    rows = rows[3_000:]
    rates: dict[str, list[float]] = {"inline": [], "decoupled": []}
    sent: dict[str, list[tuple]] = {}
    for k in range(args.runs):
        for design in ("inline", "decoupled") if k % 2 == 0 else ("decoupled", "inline"):
            copy = copy_of_template(server, f"{TEMPLATE}_{design}")
            if design == "inline":
                rate = run_inline(copy, rows, args.batch)
                note = ""
            else:
                rate, passes = run_decoupled(copy, rows, args.batch, args.chunk)
                note = f" ({len(passes)} processor passes, median {statistics.median(passes):,.0f} frames)"
            rates[design].append(rate)
            log(f"  {design}: {rate:,.0f} events/s{note}")
            sent.setdefault(design, commands(copy))
    same = sent["inline"] == sent["decoupled"]
    ratio = statistics.median(
        d / i for d, i in zip(rates["decoupled"], rates["inline"], strict=True)
    )
    print(f"\n{args.frames:,} live-order frames, {args.runs} runs each, alternating:")
    for design, values in rates.items():
        print(f"  {design:<10} {' '.join(f'{v:,.0f}' for v in values)} events/s")
    print(f"  the same commands both ways: {same} ({len(sent['inline']):,} commands)")
    print(f"decoupled/inline ratio (median of pairs): {ratio:.2f}")
    with open(args.json, "w") as out:
        json.dump({**vars(args), "events_per_s": rates, "same_commands": same, "ratio": ratio}, out)
    with psycopg.connect(server, autocommit=True) as conn:
        for name in (TEMPLATE, f"{TEMPLATE}_inline", f"{TEMPLATE}_decoupled"):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
