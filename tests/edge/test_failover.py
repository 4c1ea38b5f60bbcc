"""A failover to a server that lacks the last commits (asynchronous replication): the
ingester's replay window writes them again there, and duplicates stay harmless.

Two embedded servers stand for the old primary (A) and the promoted standby (B); the
ingester's DSN names both, as libpq multi-host DSNs do (`host=A,B target_session_attrs=
read-write`). B has none of A's frames: what the test checks is that the frames of the
replay window reach B after A dies, and that on a server that has them they change nothing."""

from __future__ import annotations

import subprocess
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingester import embedded
from ingester.install import migrations
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for


def _epoch(dsn: str) -> str:
    """cti.epoch_v1() as a desk login sees it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pgcti_failover_desk")
        conn.execute("CREATE ROLE pgcti_failover_desk LOGIN IN ROLE cti_client")
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES ('pgcti_failover_desk', 1)"
            " ON CONFLICT DO NOTHING"
        )
    with psycopg.connect(make_conninfo(dsn, user="pgcti_failover_desk")) as desk:
        return desk.execute("SELECT cti.epoch_v1()").fetchone()[0]


def _server(home, monkeypatch) -> str:
    monkeypatch.setenv("PGCTI_HOME", str(home))
    dsn = embedded.start()
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_crm(conn)
    return dsn


def test_frames_committed_before_a_failover_reach_the_new_primary(tmp_path, monkeypatch):
    a = _server(tmp_path / "a", monkeypatch)
    b = _server(tmp_path / "b", monkeypatch)
    hosts = f"{conninfo_to_dict(a)['host']},{conninfo_to_dict(b)['host']}"
    both = make_conninfo(a, host=hosts, target_session_attrs="read-write")
    sim = SimulatorThread()
    ingest = IngestProcess(both, sim.url, tmp_path / "ingest", KEY, "--replay-window", "60")
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        before = pbx.inbound_answered(builder(1), KNOWN, LINE, "101")
        sim.send(before)
        wait_for(lambda: count_rows(a) == len(before) + 1, what="the first call on A")
        assert count_rows(b) == 0
        epoch_a = _epoch(a)
        assert epoch_a == _epoch(a), "stable while nothing changes"

        monkeypatch.setenv("PGCTI_HOME", str(tmp_path / "a"))
        embedded.stop("immediate")  # A dies; B is the only primary left
        after = pbx.inbound_answered(builder(2), KNOWN, LINE, "102")
        sim.send(after)
        wait_for(
            lambda: count_rows(b) == len(before) + 1 + len(after),
            timeout=30,
            what="both calls on B",
        )
        # The first call was derived again on B, from its frames: its card opened there too.
        cards = "SELECT count(*) FROM cti.outbox WHERE type = 'open_card'"
        assert count_rows(b, cards) == 2
        # A client that reconnects learns that the history changed.
        assert _epoch(b) != epoch_a
        # `pgcti watch` on the same multi-host DSN finds the new primary (A is down) and
        # shows desk 101 the card of the call from before the failover.
        shown = subprocess.run(
            [
                sys.executable,
                "-m",
                "ingester.cli",
                "watch",
                "--dsn",
                make_conninfo(both, user="pgcti_failover_desk"),
                "--count",
                "1",
                "--duration",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0 and "open_card" in shown.stdout, shown.stderr
        duplicates = "SELECT count(*) - count(DISTINCT (source, dedup_key)) FROM cti.raw_event"
        assert count_rows(b, duplicates) == 0
    finally:
        code = ingest.stop()
        sim.close()
        monkeypatch.setenv("PGCTI_HOME", str(tmp_path / "b"))
        embedded.stop("immediate")
    assert code == 0, ingest.log
    # The 7 frames of the first call and the PBX's `subscribed` reply.
    assert "wrote again the 8 frame(s) of the last 60s" in ingest.log, ingest.log
