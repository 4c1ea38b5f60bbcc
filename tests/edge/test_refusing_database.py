"""A database that refuses writes for a reason that is not the frames' (not migrated, a right
missing) keeps every frame in the spool, says why, and reports unhealthy until it is fixed
(issue 10, availability 3)."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ingester.clients.gateway_process import free_port
from ingester.install import migrations
from ingester.simulator import onlinepbx3_calls as pbx
from tests.conftest import count_rows
from tests.support.crm_fixture import KNOWN, LINE, builder, seed_crm
from tests.support.live import KEY, IngestProcess, SimulatorThread, health, wait_for


@pytest.fixture
def sim():
    simulator = SimulatorThread()
    yield simulator
    simulator.close()


def _refused_then_fixed(ingest_dsn, sim, tmp_path, advice: str, fix, check_dsn: str) -> str:
    port = free_port()
    ingest = IngestProcess(ingest_dsn, sim.url, tmp_path, KEY, "--metrics-port", str(port))
    try:
        wait_for(lambda: sim.server.listeners() == 1, what="subscription")
        frames = pbx.inbound_answered(builder(7), KNOWN, LINE, "101")
        assert sim.send(frames) == len(frames)
        status, state = wait_for(
            lambda: (
                (h := health(port))[0] == 503 and h[1].get("spool_depth") == len(frames) + 1 and h
            ),
            what="unhealthy, every frame spooled",
        )
        assert advice in state["db_problem"], state
        fix()
        wait_for(
            lambda: count_rows(check_dsn) == len(frames) + 1, timeout=30, what="the spool written"
        )
        assert wait_for(lambda: health(port)[0] == 200, what="healthy again")
    finally:
        assert ingest.stop() == 0
    log = ingest.log
    assert "ERROR" in log and advice in log and "the database takes writes again" in log
    assert "frame refused" not in log and "rejected" not in log, "no frame was given up"
    return log


def test_an_unmigrated_database_keeps_the_frames_until_it_is_migrated(fresh_db, sim, tmp_path):
    _refused_then_fixed(
        fresh_db, sim, tmp_path, "run `pgcti migrate`", lambda: migrations.apply(fresh_db), fresh_db
    )


def test_a_login_without_rights_keeps_the_frames_until_it_gets_them(
    conn, dsn, make_login, sim, tmp_path
):
    seed_crm(conn)
    wrong = make_login("cti_client", "not_an_ingester")  # a CRM client's group, not the ingester's
    login = conninfo_to_dict(wrong)["user"]

    def grant() -> None:
        conn.execute(sql.SQL("GRANT cti_ingester TO {}").format(sql.Identifier(login)))
        conn.execute("INSERT INTO cti.ingester_login (login) VALUES (%s)", [login])

    _refused_then_fixed(wrong, sim, tmp_path, "member of cti_ingester", grant, dsn)


def test_a_frame_the_database_refuses_is_stored_in_a_bounded_form(conn, dsn, tmp_path):
    """A frame no PostgreSQL text can hold (a NUL character: the WebSocket transport escapes
    it, so this drives the writer itself) in the middle of a call: the batch is halved until
    that frame is alone; it is stored as its size, hash, escaped beginning and the reason;
    the call around it completes, and nothing waits in the spool."""
    import asyncio
    from datetime import UTC, datetime

    from ingester.frame import Frame
    from ingester.pipeline.metrics import Metrics
    from ingester.pipeline.spool import Spool
    from ingester.pipeline.writer import Writer

    seed_crm(conn)
    now = datetime.now(UTC)
    call = [
        Frame("onlinepbx3", now, json.dumps(f))
        for f in pbx.inbound_answered(builder(8), KNOWN, LINE, "101")
    ]
    poison = Frame("onlinepbx3", now, '{"event": "channel_create", "data": {"note": "a\x00b"}}')
    spool = Spool(tmp_path / "spool")
    writer = Writer(dsn, spool, Metrics())

    async def write_all() -> None:
        task = asyncio.create_task(writer.run())
        for frame in [*call[:2], poison, *call[2:]]:
            writer.submit(frame)
        writer.stop()
        await task

    asyncio.run(write_all())
    assert spool.depth == 0
    assert count_rows(dsn) == len(call) + 1
    body = conn.execute(
        "SELECT body FROM cti.raw_event WHERE body LIKE 'pgcti ingester: the database refused%'"
    ).fetchone()[0]
    assert f"{len(poison.body.encode())} bytes" in body and "sha256 " in body
    assert "a\\x00b" in body, "the beginning, escaped"
    assert conn.execute("SELECT outcome FROM cti.call").fetchall() == [("answered",)]


def test_a_conflict_with_another_session_is_written_again_not_spooled(conn, dsn, tmp_path, caplog):
    """A DBA's transaction holds a call while the ingester's login gives up waiting on locks
    after 100 ms (lock_timeout): the batch is written again at once, not spooled, and the
    ingester neither reports the database unhealthy nor logs an ERROR."""
    import asyncio
    import logging
    import threading
    from datetime import UTC, datetime

    from psycopg.conninfo import make_conninfo

    from ingester.frame import Frame
    from ingester.pipeline.metrics import Metrics
    from ingester.pipeline.spool import Spool
    from ingester.pipeline.writer import Writer

    seed_crm(conn)
    frames = [
        Frame("onlinepbx3", datetime.now(UTC), json.dumps(f))
        for f in pbx.inbound_answered(builder(9), KNOWN, LINE, "101")
    ]
    impatient = make_conninfo(dsn, options="-c lock_timeout=100")
    spool, metrics = Spool(tmp_path / "spool"), Metrics()
    holder = psycopg.connect(dsn)
    released = threading.Event()

    async def write_all() -> None:
        writer = Writer(impatient, spool, metrics)
        task = asyncio.create_task(writer.run())
        writer.submit(frames[0])  # the call exists
        while count_rows(dsn) < 1:
            await asyncio.sleep(0.01)
        holder.execute("SELECT * FROM cti.call FOR UPDATE")  # ... and a DBA holds it
        threading.Timer(0.25, lambda: (holder.rollback(), released.set())).start()
        for frame in frames[1:]:
            writer.submit(frame)
        writer.stop()
        await task

    with caplog.at_level(logging.WARNING, logger="pgcti.writer"):
        asyncio.run(write_all())
    written_while_held = released.wait(2)  # the writes waited for the DBA's transaction
    holder.close()
    assert metrics.spooled._value.get() == 0 and metrics.db_problem is None
    assert count_rows(dsn) == len(frames) and spool.depth == 0 and written_while_held
    assert "conflicted with another session" in caplog.text and "[55P03]" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert conn.execute("SELECT outcome FROM cti.call").fetchall() == [("answered",)]
