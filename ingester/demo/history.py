"""A month of call history for the demo, so that `pgcti report` shows real shapes.

The calls go through the same path as live ones: simulated PBX frames, stamped with the
past day and hour they happened, inserted into cti.raw_event and derived by the database.
A missed call is usually called back some minutes later; some callers get a deal, and
some deals are won. Deals are the CRM's business, so they are written into the reference
CRM's deal table, as a CRM would.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import psycopg

from ingester.frame import Frame
from ingester.pipeline.writer import batch_params, chunks
from ingester.queries import query
from ingester.simulator import onlinepbx3_calls as calls
from ingester.simulator.traffic import Traffic

# Calls per hour of a working day (9:00-19:00, a lunch dip), and per weekday.
HOURLY = {9: 6, 10: 11, 11: 12, 12: 9, 13: 6, 14: 9, 15: 10, 16: 9, 17: 7, 18: 4}
WEEKDAY = [1.0, 1.0, 0.95, 0.9, 0.85, 0.3, 0.15]


def seed_history(
    conn: psycopg.Connection,
    numbers: list[str],
    extensions: list[str],
    days: int = 30,
    seed: int = 11,
    today: datetime | None = None,
) -> int:
    """Play `days` days of calls ending yesterday; returns how many calls."""
    rng = random.Random(seed)
    # A seed of its own kind: the live demo's `--seed 11` must not replay these calls' uuids
    # (a call of the run would land in a call of the month).
    traffic = Traffic(f"history {seed}", numbers, extensions, scale=1.0, unknown_share=0.35)
    midnight = (today or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    frames: list[Frame] = []
    count = 0
    for back in range(days, 0, -1):
        day = midnight - timedelta(days=back)
        for hour, per_hour in HOURLY.items():
            for _ in range(_poisson(rng, per_hour * WEEKDAY[day.weekday()])):
                start = day + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
                timed = traffic.call(start.timestamp())
                frames += [_frame(at, frame) for at, frame in timed]
                count += 1
                end = timed[-1][1]
                missed = (
                    end["event"] == "call_end"
                    and end["data"]["type"] == "inbound"
                    and end["data"]["hangup_cause"] != "NORMAL_CLEARING"
                )
                if missed and rng.random() < 0.75:  # called back, mostly within the hour
                    b = calls.CallBuilder(
                        random.Random(rng.getrandbits(64)),
                        clock=timed[-1][0] + rng.expovariate(1 / 1500),
                    )
                    number = end["data"]["caller_number"]
                    out = calls.outbound(b, rng.choice(extensions), number, rng.random() < 0.8)
                    frames += [_frame(at, frame) for at, frame in zip(b.times, out, strict=True)]
                    count += 1
    frames.sort(key=lambda f: f.received_at)
    for batch in chunks(frames, 500):
        conn.execute(query("insert_raw_events"), batch_params(batch))
    _deals(conn, rng)
    return count


def _deals(conn: psycopg.Connection, rng: random.Random) -> None:
    """Some callers get a deal a few days after their first call; some deals are won."""
    firsts = conn.execute(query("history_first_calls")).fetchall()
    for client_id, manager_id, first_call in firsts:
        if rng.random() < 0.35:
            opened = first_call + timedelta(days=rng.uniform(0.2, 6))
            won = opened + timedelta(days=rng.uniform(1, 12)) if rng.random() < 0.45 else None
            conn.execute(query("history_deal"), [client_id, manager_id, won, opened, won])


def _frame(at: float, frame: dict) -> Frame:
    return Frame("onlinepbx3", datetime.fromtimestamp(at, UTC), json.dumps(frame))


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: good enough for a dozen calls an hour."""
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
