"""`make bench`: a lone frame's server time (issue 12, part 4), against the raw log alone.

    python -m tests.bench.lone_frame [--frames 600] [--clients 100000] [--pbx onlinepbx3|asterisk]
                                     [--json bench-lone.json]

A quiet site sends a frame at a time, and what it feels is the latency of one INSERT. Each
frame here is the ingester's own statement with one frame in it, under `EXPLAIN (ANALYZE,
TIMING OFF)`: the server's execution time of the whole statement (parse, raw log,
processing, doorbell; not the commit's flush), with nothing instrumented inside it. The
same frames, one at a time, into a copy of the raw log alone (parsed and keyed, no
processing) are the baseline, interleaved frame by frame so that noise falls on both; the
difference is what processing costs a lone frame. Then 200 more frames, each after 50 ms
of quiet, as a site that sends a frame now and then has them. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import psycopg

from ingester import embedded
from ingester.frame import Frame
from ingester.pipeline.writer import batch_params
from ingester.queries import query
from tests.bench.workload import (
    RAW_LOG_INSERT,
    RAW_LOG_SETUP,
    frames_for,
    log,
    machine,
    scratch_database,
    seed_crm,
)

WARM_UP = 3000  # frames in batches first: calls in flight, plans made, tables not empty
QUIET_FRAMES, QUIET_S = 200, 0.05  # then frames as a quiet site sends them: 50 ms apart


def execution_ms(conn: psycopg.Connection, statement: str, frame: dict) -> float:
    plan = conn.execute(
        "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, batch_params([Frame(**frame)])
    ).fetchone()[0]
    return plan[0]["Execution Time"]


def lone_frames(dsn: str, frames: int, clients: int, protocol: str) -> dict:
    rows = frames_for(WARM_UP + frames + QUIET_FRAMES, clients, seed=3, protocol=protocol)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA bench")
        conn.execute(RAW_LOG_SETUP)
        log(f"warm-up: {WARM_UP:,} frames in batches of 500")
        for start in range(0, WARM_UP, 500):
            batch = batch_params([Frame(**row) for row in rows[start : start + 500]])
            conn.execute(query("insert_raw_events"), batch)
            conn.execute(RAW_LOG_INSERT, batch)
        conn.execute("ANALYZE")
        log(f"{frames:,} lone frames, each alone in its INSERT, live order")
        pipeline, raw_log = [], []
        for row in rows[WARM_UP : WARM_UP + frames]:
            pipeline.append(execution_ms(conn, query("insert_raw_events"), row))
            raw_log.append(execution_ms(conn, RAW_LOG_INSERT, row))
        # A machine that was idle runs the same statements slower (caches gone cold, a
        # processor woken up): what a site sending a frame now and then sees.
        log(f"{QUIET_FRAMES} more, each after {QUIET_S * 1000:.0f} ms of quiet")
        quiet, quiet_round_trip = [], []
        for row in rows[WARM_UP + frames :]:
            time.sleep(QUIET_S)
            started = time.perf_counter()
            quiet.append(execution_ms(conn, query("insert_raw_events"), row))
            quiet_round_trip.append((time.perf_counter() - started) * 1000)
        failed = conn.execute(
            "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
        ).fetchone()[0]
        trigger = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = '_500_process'"
        ).fetchone()[0]
    assert trigger == "O" and failed == 0, (
        f"processing off or {failed} frames failed: nothing measured"
    )
    processing = [p - r for p, r in zip(pipeline, raw_log, strict=True)]
    return {
        "pbx": protocol,
        "frames": frames,
        "pipeline_ms_p50": statistics.median(pipeline),
        "pipeline_ms_mean": statistics.mean(pipeline),
        "raw_log_ms_p50": statistics.median(raw_log),
        "processing_ms_p50": statistics.median(processing),
        "processing_ms_mean": statistics.mean(processing),
        "pipeline_vs_raw_log": statistics.median(raw_log) / statistics.median(pipeline),
        "after_quiet_pipeline_ms_p50": statistics.median(quiet),
        "after_quiet_round_trip_ms_p50": statistics.median(quiet_round_trip),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("PGCTI_TEST_DSN"))
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--pbx", choices=["onlinepbx3", "asterisk"], default="onlinepbx3")
    parser.add_argument("--json", default="bench-lone.json")
    args = parser.parse_args()

    server = args.dsn or embedded.start()
    results: dict = {"machine": machine(server)}
    dsn = scratch_database(server, "pgcti_bench_lone")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed_crm(conn, args.clients)
        results["lone_frame"] = lone = lone_frames(dsn, args.frames, args.clients, args.pbx)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS pgcti_bench_lone WITH (FORCE)")
    with open(args.json, "w") as out:
        json.dump(results, out, indent=2)
    print(f"\nA lone {lone['pbx']} frame ({lone['frames']} frames, server execution time, ms):")
    print(
        f"  whole INSERT      p50 {lone['pipeline_ms_p50']:.3f}  mean {lone['pipeline_ms_mean']:.3f}"
    )
    print(f"  raw log alone     p50 {lone['raw_log_ms_p50']:.3f}")
    print(
        f"  processing        p50 {lone['processing_ms_p50']:.3f}  mean {lone['processing_ms_mean']:.3f}"
        "  (goal <= 0.5)"
    )
    print(
        f"  after {QUIET_S * 1000:.0f} ms of quiet: whole INSERT p50"
        f" {lone['after_quiet_pipeline_ms_p50']:.3f}, seen from the client with its commit"
        f" {lone['after_quiet_round_trip_ms_p50']:.3f}"
    )
    print(f"\nwritten to {args.json}")
    print(f"lone frame processing ms: {lone['processing_ms_p50']:.3f}")


if __name__ == "__main__":
    main()
