"""What one CRM client does cannot hold up ingestion for anyone (issue 10: availability)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ingester.simulator import onlinepbx3_calls as pbx
from tests.support.crm_fixture import (
    KNOWN,
    LINE,
    builder,
    channel,
    insert_batch,
    insert_frames,
    seed_crm,
)


def _opened_cards(conn: psycopg.Connection, workstation: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM cti.outbox WHERE target_kind = 'ws' AND target_id = %s"
        " AND type = 'open_card'",
        [workstation],
    ).fetchone()[0]


def test_a_client_holding_its_ack_open_stalls_nobody(conn, dsn, make_login):
    crm = seed_crm(conn)
    desk = make_login("cti_client", "holds_ack")
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, %s, %s)",
        [conninfo_to_dict(desk)["user"], crm["ws-101"], crm["Petrova"]],
    )
    insert_frames(conn, pbx.inbound_answered(builder(1), KNOWN, LINE, "101"))  # its streams exist

    # A client that forgot autocommit: it acks and leaves its transaction open.
    forgetful = psycopg.connect(desk)
    try:
        forgetful.execute("SELECT cti.ack_commands_v1(1)")
        forgetful.execute("SELECT cti.ack_notifications_v1(0)")
        with psycopg.connect(dsn, autocommit=True) as feeder:
            # A writer that would have to wait for the client fails at once instead.
            feeder.execute("SET lock_timeout = '2s'")
            insert_frames(feeder, pbx.inbound_answered(builder(2), KNOWN, LINE, "102"))
            insert_frames(feeder, pbx.inbound_answered(builder(3), KNOWN, LINE, "101"))
            failed = feeder.execute(
                "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
            ).fetchone()[0]
        assert failed == 0
        assert _opened_cards(conn, crm["ws-102"]) == 1, "another desk's pop"
        assert _opened_cards(conn, crm["ws-101"]) == 2, "a new item on the client's own stream"
        # The client's own view, still inside its open transaction, moves on as it acks.
        forgetful.execute("SELECT cti.ack_commands_v1(3)")
    finally:
        forgetful.close()
    with psycopg.connect(desk, autocommit=True) as client:
        rows = client.execute("SELECT stream, acked_seq FROM cti.whoami_v1() ORDER BY 1").fetchall()
    assert rows == [("commands", 0), ("notifications", 0)], "an ack rolled back is no ack"


def test_a_full_notify_queue_skips_doorbells_and_ingestion_goes_on(own_server):
    """A listener stuck in a transaction holds PostgreSQL's NOTIFY queue; once it is half
    full, doorbells are left out (and counted) instead of failing every INSERT."""
    from ingester import embedded
    from ingester.install import migrations

    with psycopg.connect(own_server, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET max_notify_queue_pages = 64")  # 512 kB, the least
    embedded.stop()
    dsn = embedded.start()
    migrations.apply(dsn, reference_crm=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        crm = seed_crm(conn)
        stuck = psycopg.connect(dsn, autocommit=True)
        stuck.execute(f'LISTEN "{channel(conn, "ws", crm["ws-101"])}"')
        stuck.execute("BEGIN")
        stuck.execute("SELECT 1")  # idle in transaction: it reads no notification until it ends
        # 40 employees hear every call ring: about 45 doorbells a call.
        conn.execute(
            "INSERT INTO pgcti_refcrm.employee (surname, receives_call_notifications)"
            " SELECT 'Listener ' || n, true FROM generate_series(1, 40) n"
        )
        try:
            calls = 200  # about 9,000 doorbells: the queue holds about 6,500
            frames = [
                f
                for n in range(calls)
                for f in pbx.inbound_answered(builder(n), KNOWN, LINE, "101")
            ]
            for start in range(0, len(frames), 500):
                insert_batch(conn, frames[start : start + 500])
            skipped, skips = conn.execute(
                "SELECT coalesce(sum(doorbells), 0), count(*) FROM cti.doorbell_skip"
            ).fetchone()
            usage = conn.execute("SELECT pg_notification_queue_usage()").fetchone()[0]
        finally:
            stuck.close()
    with psycopg.connect(dsn) as conn:
        assert _opened_cards(conn, crm["ws-101"]) == calls, "every command is stored"
    assert skipped > 0 and skips > 0, "doorbells were skipped and counted"
    assert usage < 0.75, f"the queue stayed below full ({usage:.2f})"


def test_a_desk_can_neither_find_nor_hear_another_desks_channel(conn, make_login):
    import re

    crm = seed_crm(conn)
    logins = {}
    for desk in ("ws-101", "ws-102"):
        dsn = make_login("cti_client", f"chan_{desk[-3:]}")
        conn.execute(
            "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
            [conninfo_to_dict(dsn)["user"], crm[desk]],
        )
        logins[desk] = dsn
    with psycopg.connect(logins["ws-102"], autocommit=True) as spy:
        (mine,) = spy.execute("SELECT channel FROM cti.whoami_v1()").fetchone()
        assert re.fullmatch(rf"cti_ws_v1_{crm['ws-102']}_[0-9a-f]{{24}}", mine), mine
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            spy.execute("SELECT cti.channel_name('ws', %s)", [crm["ws-101"]])
        spy.execute(f'LISTEN "cti_ws_v1_{crm["ws-101"]}"')  # 0.1.0's guessable name
        with psycopg.connect(logins["ws-101"], autocommit=True) as owner:
            (theirs,) = owner.execute("SELECT channel FROM cti.whoami_v1()").fetchone()
            owner.execute(f'LISTEN "{theirs}"')
            insert_frames(conn, pbx.inbound_answered(builder(5), KNOWN, LINE, "101"))
            heard = [n.channel for n in owner.notifies(timeout=2, stop_after=2)]
        assert heard == [theirs, theirs], "the desk itself hears its doorbells"
        assert list(spy.notifies(timeout=0.5)) == [], "the other desk hears nothing"

    rotated = conn.execute("SELECT cti.rotate_channel_key()").fetchone()[0]
    assert rotated is not None
    with psycopg.connect(logins["ws-101"], autocommit=True) as owner:
        assert owner.execute("SELECT channel FROM cti.whoami_v1()").fetchone()[0] != theirs


def test_a_desk_login_created_as_documented_cannot_crowd_out_the_ingester(conn, dsn):
    """The SQL block of docs/dba-guide.md that creates logins, run as a DBA would."""
    import re
    from pathlib import Path

    from psycopg.conninfo import make_conninfo

    guide = (Path(__file__).resolve().parents[2] / "docs" / "dba-guide.md").read_text()
    block = next(b for b in re.findall(r"```sql\n(.*?)```", guide, re.S) if "CONNECTION LIMIT" in b)
    suffix = conn.info.backend_pid  # the server's roles are shared: names of this test's own
    names = {"pgcti_ingest": f"pgcti_ingest_{suffix}", "desk_12": f"desk_12_{suffix}"}
    for documented, ours in names.items():
        block = block.replace(documented, ours)
    block = block.replace("PASSWORD '...'", "PASSWORD 'pw'")
    seed_crm(conn)
    try:
        conn.execute(block)
        limit = int(re.search(r"CONNECTION LIMIT (\d+)", block).group(1))
        desk = make_conninfo(dsn, user=names["desk_12"], password="pw")
        held = [psycopg.connect(desk) for _ in range(limit)]
        try:
            with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
                psycopg.connect(desk)
            ingester = make_conninfo(dsn, user=names["pgcti_ingest"], password="pw")
            with psycopg.connect(ingester) as ingest:
                assert ingest.execute("SELECT 1").fetchone() == (1,)
        finally:
            for c in held:
                c.close()
    finally:
        conn.execute("DELETE FROM cti.client_login")
        for name in names.values():
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_an_ingester_login_writes_only_in_the_database_it_was_made_for(dsn, fresh_db, make_login):
    """Two pgcti databases on one server (staging and production, say): roles are shared,
    so membership in cti_ingester alone would let staging's ingester write to production."""
    from psycopg.conninfo import make_conninfo

    from ingester.install import migrations

    staging_ingester = make_login("cti_ingester", "staging")  # made for (registered in) `dsn`
    migrations.apply(fresh_db, reference_crm=True)  # the second database
    params = conninfo_to_dict(staging_ingester)
    elsewhere = make_conninfo(fresh_db, user=params["user"], password=params["password"])
    frame = '{"event": "subscribed"}'
    refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not write raw events")
    with psycopg.connect(elsewhere, autocommit=True) as other:
        with refused:
            other.execute(
                "INSERT INTO cti.raw_event (source, body) VALUES ('onlinepbx3', %s)", [frame]
            )
        with refused:  # the ingester's own statement, too
            insert_batch(other, [frame])
    with psycopg.connect(staging_ingester, autocommit=True) as own:
        own.execute("INSERT INTO cti.raw_event (source, body) VALUES ('onlinepbx3', %s)", [frame])
        insert_batch(own, [frame.replace("}", ', "n": 2}')])
    with psycopg.connect(fresh_db) as admin:
        assert admin.execute("SELECT count(*) FROM cti.raw_event").fetchone() == (0,)
