"""The database goes away mid-stream (stopped hard), and the ingester is killed while it is away:
nothing is lost, nothing is duplicated, every command is delivered after recovery."""

from __future__ import annotations

import psycopg

from ingester import embedded
from ingester.install import migrations
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import IngestProcess, SimulatorThread, wait_for


def _spooled(ingest: IngestProcess) -> int:
    path = ingest.spool_dir / "frames.jsonl"
    return sum(1 for _ in path.open()) if path.exists() else 0


def test_database_outage_and_ingester_kill_lose_nothing(own_server, tmp_path):
    dsn = own_server
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    calls = [pbx.inbound_answered(builder(seed), KNOWN, LINE, "101") for seed in range(30)]
    batches = [sum(calls[i : i + 10], []) for i in (0, 10, 20)]
    sim = SimulatorThread()
    ingest = IngestProcess(dsn, sim.url, tmp_path)
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        sim.send(batches[0])
        wait_for(lambda: count_rows(dsn) == len(batches[0]) + 1, what="first batch stored")

        embedded.stop("immediate")  # a crash, not a clean shutdown
        sim.send(batches[1])
        wait_for(
            lambda: _spooled(ingest) == len(batches[1]),
            what="frames spooled while the database is down",
        )
        ingest.kill()  # SIGKILL: the spool is all that is left

        embedded.start()
        ingest = IngestProcess(dsn, sim.url, tmp_path)  # same spool directory
        wait_for(lambda: sim.server.listeners() == 1, what="resubscription")
        sim.send(batches[2])
        total = sum(len(b) for b in batches) + 1
        wait_for(lambda: count_rows(dsn) == total, timeout=30, what="every frame stored")
        assert ingest.stop() == 0
    finally:
        ingest.kill()
        sim.close()
    with psycopg.connect(dsn) as conn:
        dups = conn.execute(
            "SELECT count(*) - count(DISTINCT (source, dedup_key)) FROM cti.raw_event"
        ).fetchone()[0]
        outcomes = conn.execute("SELECT outcome, count(*) FROM cti.call GROUP BY 1").fetchall()
        sent = dict(
            conn.execute(
                "SELECT type, count(*) FROM cti.outbox WHERE target_kind = 'ws' GROUP BY 1"
            ).fetchall()
        )
    assert dups == 0
    assert outcomes == [("answered", 30)]
    assert sent == {"open_card": 30, "call_ended": 30}
    assert _spooled(ingest) == 0
