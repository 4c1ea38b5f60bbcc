"""Quick fault cases (the long ones are `make chaos`): two ingesters on one feed, a stalled CRM client,
a network partition between the ingester and the database (a TCP proxy of the test's own)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from ingester.pipeline.spool import read_records
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows
from tests.support.crm_fixture import KNOWN, LINE, builder, insert_frames, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, wait_for
from tests.support.tcp_proxy import TcpProxy


def _journaled_calls(journal: Path) -> int:
    """The calls' frames in the receive journal. Not its lines: a record settled while newer
    ones share its file stays there until they settle too (a restart replays it: a no-op),
    so the subscribe reply may or may not be among them, depending on when its fsync ended."""
    return sum(
        json.loads(frame.body).get("event") != "subscribed"
        for path in journal.glob("*.jsonl")
        for frame in read_records(path).frames
    )


def test_two_ingesters_on_one_feed_store_once_and_survive_a_kill(conn, dsn, tmp_path):
    seed_crm(conn)
    calls = [
        pbx.inbound_answered(builder(seed), KNOWN, LINE, "101" if seed % 2 else "102")
        for seed in range(20)
    ]
    sim = SimulatorThread()
    first, second = (
        IngestProcess(dsn, sim.url, tmp_path / "a"),
        IngestProcess(dsn, sim.url, tmp_path / "b"),
    )
    try:
        wait_for(lambda: sim.server.listeners() == 2, what="both ingesters subscribed")
        for frames in calls[:10]:
            assert sim.send(frames) == 2 * len(frames)
        first.kill()  # SIGKILL mid-stream: the other one carries on
        for frames in calls[10:]:
            sim.send(frames)
        total = (
            sum(len(f) for f in calls) + 1
        )  # + the `subscribed` reply (identical from both: stored once)
        wait_for(lambda: count_rows(dsn) == total, what="every frame stored once")
        assert second.stop() == 0
    finally:
        first.kill()
        second.kill()
        sim.close()
    sent = count_rows(dsn, "SELECT count(*) FROM cti.outbox")
    distinct = count_rows(
        dsn, "SELECT count(DISTINCT (target_kind, target_id, type, call_id)) FROM cti.outbox"
    )
    assert sent == distinct, "no command sent twice"
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'open_card'") == 20
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'call_ended'") == 20


def test_a_stalled_client_does_not_hold_up_ingestion_and_is_cut_off(conn, dsn, make_login):
    crm = seed_crm(conn)
    stalled = make_login("cti_client", "stalled")
    login = psycopg.conninfo.conninfo_to_dict(stalled)["user"]
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
        [login, crm["ws-101"]],
    )
    # What docs/operations.md tells DBAs to set on CRM client logins.
    conn.execute(f"ALTER ROLE \"{login}\" SET idle_in_transaction_session_timeout = '2s'")
    client = psycopg.connect(stalled)
    for (name,) in client.execute("SELECT channel FROM cti.whoami_v1()").fetchall():
        client.execute(f'LISTEN "{name}"')
    client.execute(
        "SELECT * FROM cti.pull_commands_v1()"
    )  # ... and then the client hangs inside its transaction
    with psycopg.connect(dsn, autocommit=True) as feeder:
        for seed in range(40):
            insert_frames(feeder, pbx.inbound_answered(builder(seed), KNOWN, LINE, "101"))
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'open_card'") == 40, (
        "ingestion unaffected"
    )
    usage = count_rows(dsn, "SELECT pg_notification_queue_usage()")
    assert usage < 0.01, f"NOTIFY queue usage {usage}"
    wait_for(
        lambda: (
            count_rows(dsn, f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{login}'") == 0
        ),
        what="the stalled session to be cut off by idle_in_transaction_session_timeout",
    )
    client.close()


def test_a_network_partition_between_ingester_and_database_loses_nothing(conn, dsn, tmp_path):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    seed_crm(conn)
    params = conninfo_to_dict(dsn)
    proxy = TcpProxy(Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}")
    through_proxy = make_conninfo(dsn, host="127.0.0.1", port=str(proxy.port))
    calls = [pbx.inbound_answered(builder(seed), KNOWN, LINE, "101") for seed in range(5)]
    sim = SimulatorThread()
    ingest = IngestProcess(through_proxy, sim.url, tmp_path, KEY, "--db-timeout", "2")
    stored = 1  # the `subscribed` reply
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        for mode, frames in zip(
            ["pass", "delay", "blackhole", "reset", "pass"], calls, strict=True
        ):
            proxy.mode, proxy.delay = ("pass", 0.0) if mode == "reset" else (mode, 0.03)
            if mode == "reset":
                proxy.reset()
            sim.send(frames)
            stored += len(frames)
            if mode == "blackhole":  # writes hang, time out, and go to the spool
                wait_for(lambda: "spooling" in ingest.log, what="the write to time out and spool")
                proxy.mode = "pass"
            wait_for(
                lambda n=stored: count_rows(dsn) == n,
                timeout=30,
                what=f"frames stored after {mode}",
            )
        assert ingest.stop() == 0
    finally:
        ingest.kill()
        sim.close()
        proxy.close()
    assert count_rows(dsn, "SELECT count(*) - count(DISTINCT dedup_key) FROM cti.raw_event") == 0
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'call_ended'") == 5
    assert "the database did not answer within 2s" in ingest.log


def test_a_sigkill_while_writes_hang_loses_nothing(conn, dsn, tmp_path):
    """Frames the ingester holds only in memory (queued, or in a batch whose write hangs)
    when it is SIGKILLed are in its receive journal; the next start writes them."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    seed_crm(conn)
    params = conninfo_to_dict(dsn)
    proxy = TcpProxy(Path(params["host"]) / f".s.PGSQL.{params.get('port', 5432)}")
    through_proxy = make_conninfo(dsn, host="127.0.0.1", port=str(proxy.port))
    calls = [pbx.inbound_answered(builder(seed), KNOWN, LINE, "101") for seed in range(6)]
    frames = sum(len(c) for c in calls)
    journal = tmp_path / "spool" / "journal"
    sim = SimulatorThread()
    first = IngestProcess(through_proxy, sim.url, tmp_path, KEY, "--db-timeout", "60")
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        wait_for(lambda: count_rows(dsn) == 1, what="the subscribe reply stored")
        proxy.mode = "blackhole"  # every write from now on hangs
        for call in calls:
            sim.send(call)
        wait_for(lambda: _journaled_calls(journal) == frames, what="every frame in the journal")
        first.kill()
        assert count_rows(dsn) == 1, "nothing written while the database hung"
        second = IngestProcess(dsn, sim.url, tmp_path, KEY)  # the same spool directory
        try:
            wait_for(lambda: count_rows(dsn) == 1 + frames, what="the journaled frames stored")
            assert second.stop() == 0
        finally:
            second.kill()
    finally:
        first.kill()
        sim.close()
        proxy.close()
    assert "received by an earlier run that stopped before writing them" in second.log
    assert count_rows(dsn, "SELECT count(*) FROM cti.outbox WHERE type = 'call_ended'") == 6
