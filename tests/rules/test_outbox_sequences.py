"""Per-target sequences have no commit-order holes: a client that has seen seq N has seen
everything up to N, even when two transactions enqueue for one workstation at once."""

from __future__ import annotations

import threading
import time

import psycopg

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm


def _visible(dsn: str, ws: int) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT seq FROM cti.outbox WHERE target_kind = 'ws' AND target_id = %s ORDER BY seq",
                [ws],
            )
        ]


def test_a_later_commit_never_shows_a_sequence_before_an_earlier_one(dsn):
    with psycopg.connect(dsn, autocommit=True) as setup:
        ws = seed_crm(setup)["ws-101"]
    first = pbx.inbound_answered(builder(1), KNOWN, LINE, "101")[:4]  # up to open_card at ws-101
    second = pbx.inbound_answered(builder(2), "+79030001122", LINE, "101")[:4]
    with psycopg.connect(dsn) as slow, psycopg.connect(dsn) as fast:
        insert_frames(slow, first)  # takes seq 1 for ws-101, not committed yet
        done = threading.Event()

        def other() -> None:
            insert_frames(fast, second)  # wants seq 2: waits for the stream row
            fast.commit()
            done.set()

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set(), "the second transaction waits for the first one's sequence"
        assert _visible(dsn, ws) == [], (
            "nothing is visible before the first commit: no hole can show"
        )
        slow.commit()
        thread.join(10)
    assert done.is_set()
    assert _visible(dsn, ws) == [1, 2]
