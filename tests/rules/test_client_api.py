"""The CRM client's side: bound logins, pull and ack, LISTEN doorbells, least privilege."""

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


def _bind(conn, login_dsn: str, workstation: int | None, employee: int | None = None) -> None:
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id, employee_id) VALUES (%s, %s, %s)",
        [conninfo_to_dict(login_dsn)["user"], workstation, employee],
    )


def test_workstation_pulls_its_own_commands_in_order_and_acks(conn, make_login):
    crm = seed_crm(conn)
    ws1 = make_login("cti_client", "ws1")
    _bind(conn, ws1, crm["ws-101"], crm["Petrova"])
    insert_frames(conn, pbx.blind_transfer_chain(builder(), KNOWN, LINE, ["101", "102"]))
    with psycopg.connect(ws1, autocommit=True) as client:
        me = client.execute(
            "SELECT stream, channel, last_seq, acked_seq FROM cti.whoami_v1()"  # documented order
        ).fetchall()
        assert me == [
            ("commands", channel(conn, "ws", crm["ws-101"]), 2, 0),
            ("notifications", channel(conn, "emp", crm["Petrova"]), 1, 0),
        ]
        rows = client.execute(
            "SELECT seq, type, payload->>'client_name' FROM cti.pull_commands_v1()"
        ).fetchall()
        assert rows == [(1, "open_card", "Ivan Ivanov"), (2, "close_card", "Ivan Ivanov")]
        assert client.execute("SELECT cti.ack_commands_v1(1)").fetchone()[0] == 1
        assert [r[0] for r in client.execute("SELECT seq FROM cti.pull_commands_v1()")] == [2]
        assert [r[0] for r in client.execute("SELECT seq FROM cti.pull_commands_v1(0)")] == [1, 2]
        assert client.execute("SELECT cti.ack_commands_v1(99)").fetchone()[0] == 2, (
            "ack is capped at last seq"
        )
        assert (
            client.execute("SELECT cti.normalize_phone('8 (495) 123-45-67')").fetchone()[0]
            == "+74951234567"
        )
        notes = client.execute(
            "SELECT type, payload->>'manager_surname' FROM cti.pull_notifications_v1()"
        ).fetchall()
        assert notes == [("ring", "Petrova")]


def test_a_workstation_cannot_read_another_ones_commands(conn, make_login):
    crm = seed_crm(conn)
    ws1, ws2 = make_login("cti_client", "a"), make_login("cti_client", "b")
    _bind(conn, ws1, crm["ws-101"])
    _bind(conn, ws2, crm["ws-102"])
    insert_frames(conn, pbx.inbound_answered(builder(), KNOWN, LINE, "101"))
    with psycopg.connect(ws2, autocommit=True) as client:
        assert client.execute("SELECT count(*) FROM cti.pull_commands_v1(0)").fetchone()[0] == 0
        for forbidden in [
            "SELECT * FROM cti.outbox",
            "SELECT * FROM cti.call",
            "SELECT * FROM pgcti_refcrm.client",
            "SELECT * FROM cti.pull('ws', 1, 0, 10)",
            "UPDATE cti.client_login SET workstation_id = 1",
            "SET ROLE cti_owner",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                client.execute(forbidden)
        # A setting cannot make it someone else: the binding is the login itself.
        client.execute("SET application_name = 'ws-101'")
        client.execute("SELECT set_config('cti.workstation', '1', false)")
        assert client.execute("SELECT count(*) FROM cti.pull_commands_v1(0)").fetchone()[0] == 0


def test_an_unbound_login_gets_a_clear_error(make_login):
    stranger = make_login("cti_client", "stranger")
    with (
        psycopg.connect(stranger, autocommit=True) as client,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not bound to a workstation"),
    ):
        client.execute("SELECT * FROM cti.pull_commands_v1()")


def test_the_ingester_role_can_only_insert_raw_events(conn, make_login):
    seed_crm(conn)
    ingester = make_login("cti_ingester", "ing")
    with psycopg.connect(ingester, autocommit=True) as ing:
        frames = pbx.inbound_answered(builder(), KNOWN, LINE, "101")
        insert_batch(ing, frames)  # its statement; processing runs as the owner
        insert_frames(ing, frames)  # replays are no-ops, without SELECT rights, either way in
        insert_batch(ing, frames)
        for forbidden in [
            "SELECT * FROM cti.raw_event",
            "UPDATE cti.raw_event SET source = 'x'",
            "DELETE FROM cti.raw_event",
            "SELECT * FROM cti.call",
            "SELECT * FROM pgcti_refcrm.client",
            "INSERT INTO cti.raw_event (source, body, frame) VALUES ('onlinepbx3', '{}', '{}')",
            "INSERT INTO cti.raw_event (source, dedup_key) VALUES ('onlinepbx3', '\\x00')",
            "SELECT * FROM cti.parse_frames('{onlinepbx3}', '{now}', '{x}')",
            "INSERT INTO cti.outbox VALUES ('ws', 1, 1, 'open_card', 1, '{}')",
            "SELECT cti.rebuild()",
            "SELECT * FROM cti.pull_commands_v1()",
            "CREATE TABLE cti.x (a int)",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                ing.execute(forbidden)
    assert conn.execute("SELECT count(*) FROM cti.raw_event").fetchone()[0] == len(frames)
    assert [
        r[0]
        for r in conn.execute("SELECT type FROM cti.outbox WHERE target_kind = 'ws' ORDER BY seq")
    ] == ["open_card", "call_ended"]


def test_listen_doorbells_carry_type_and_ids_only(conn, make_login):
    crm = seed_crm(conn)
    ws1 = make_login("cti_client", "bell")
    _bind(conn, ws1, crm["ws-101"], crm["Petrova"])
    with psycopg.connect(ws1, autocommit=True) as client:
        for (name,) in client.execute("SELECT channel FROM cti.whoami_v1()").fetchall():
            client.execute(f'LISTEN "{name}"')
        b = builder()
        insert_frames(conn, pbx.inbound_answered(b, KNOWN, LINE, "101"))
        bells = [(n.channel, n.payload) for n in client.notifies(timeout=2, stop_after=3)]
    call_id = conn.execute("SELECT id FROM cti.call").fetchone()[0]
    assert bells == [
        (
            channel(conn, "emp", crm["Petrova"]),
            f'{{"type" : "ring", "seq" : 1, "call_id" : {call_id}}}',
        ),
        (
            channel(conn, "ws", crm["ws-101"]),
            f'{{"type" : "open_card", "seq" : 1, "call_id" : {call_id}}}',
        ),
        (
            channel(conn, "ws", crm["ws-101"]),
            f'{{"type" : "call_ended", "seq" : 2, "call_id" : {call_id}}}',
        ),
    ]


def test_the_epoch_names_the_system_and_its_timeline_and_is_stable(rolled_back):
    system, timeline = rolled_back.execute(
        "SELECT system_identifier::text, timeline_id FROM pg_control_system(), pg_control_checkpoint()"
    ).fetchone()
    first = rolled_back.execute("SELECT cti.epoch_v1()").fetchone()[0]
    assert first == f"{system}.{timeline}"
    assert rolled_back.execute("SELECT cti.epoch_v1()").fetchone()[0] == first
