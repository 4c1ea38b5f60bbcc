"""Presence (db/logic/56_presence.sql) and routing from the CRM (db/logic/58_routing.sql):
the PBX's device states and queue pauses through the raw log, a desk's own away or do
not disturb, and cti.route_v1 ringing a known client's manager first when free."""

from __future__ import annotations

import random
import time

import psycopg
import pytest

from ingester.simulator import onlinepbx3_calls as pbx
from ingester.simulator.asterisk_calls import block
from ingester.simulator.onlinepbx3_calls import CallBuilder
from tests.support.crm_fixture import KNOWN, LINE, SHARED, insert_frames, seed_crm

IVANOV = "+74951234567"  # KNOWN: his manager is Petrova, extension 101


@pytest.fixture
def site(conn, make_login):
    crm = seed_crm(conn)
    desk = make_login("cti_client", "presdesk")
    conn.execute(
        "INSERT INTO cti.client_login (login, workstation_id) VALUES (%s, %s)",
        [psycopg.conninfo.conninfo_to_dict(desk)["user"], crm["ws-101"]],
    )
    return crm, desk, make_login("cti_router", "router")


def ami(conn, event: str, **fields: str) -> str:
    insert_frames(conn, [block(event, fields)], source="asterisk")
    return conn.execute(
        "SELECT o.detail FROM cti.event_outcome o ORDER BY o.raw_event_id DESC LIMIT 1"
    ).fetchone()[0]


def presence(conn) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in conn.execute("SELECT extension, state, paused_reason FROM cti.presence_now()")
    }


def as_login(dsn: str, sql: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute(sql, params or []).fetchall()


def route(dsn: str, caller: str | None, dialled: str | None = LINE) -> tuple:
    return as_login(dsn, "SELECT extension, reason FROM cti.route_v1(%s, %s)", [caller, dialled])[0]


def test_device_states_and_pauses_from_ami_change_presence_only_on_real_change(conn, site):
    with psycopg.connect(conn.info.dsn, autocommit=True) as listener:
        listener.execute("LISTEN cti_presence_v1")
        assert (
            ami(conn, "DeviceStateChange", Device="PJSIP/101", State="NOT_INUSE")
            == "presence of 101: NOT_INUSE"
        )
        assert ami(conn, "DeviceStateChange", Device="PJSIP/101", State="NOT_INUSE").endswith(
            "(unchanged)"
        )
        ami(conn, "DeviceStateChange", Device="PJSIP/102", State="INUSE")
        ami(
            conn,
            "ExtensionStatus",
            Exten="103",
            Context="ext-local",
            Status="8",
            StatusText="Ringing",
        )
        ami(
            conn,
            "QueueMemberPause",
            Queue="sales",
            Interface="PJSIP/101",
            Paused="1",
            PausedReason="lunch",
        )
        assert "no extension's device" in ami(
            conn, "DeviceStateChange", Device="Queue:sales_avail", State="INUSE"
        )
        bells = [n.payload for n in listener.notifies(timeout=1, stop_after=4)]
    assert bells == ["101", "102", "103", "101"]  # ids only; the repeat rang nothing
    assert presence(conn) == {
        "101": ("paused", "lunch"),
        "102": ("busy", None),
        "103": ("ringing", None),
    }
    ami(conn, "QueueMemberPause", Queue="sales", Interface="PJSIP/101", Paused="0", PausedReason="")
    # A member that is a Local/ channel (FreePBX's queues) is its extension too.
    ami(
        conn,
        "QueueMemberPause",
        Queue="sales",
        Interface="Local/103@from-queue/n",
        Paused="1",
        PausedReason="",
    )
    assert presence(conn)["103"] == ("paused", None)
    ami(conn, "DeviceStateChange", Device="PJSIP/102", State="UNAVAILABLE")
    assert presence(conn)["101"] == ("available", None) and presence(conn)["102"] == (
        "offline",
        None,
    )
    (failed,) = conn.execute(
        "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
    ).fetchone()
    assert failed == 0


def test_a_desk_sets_away_or_do_not_disturb_for_itself_and_it_ends_on_time(conn, site):
    _, desk, _ = site
    ami(conn, "DeviceStateChange", Device="PJSIP/101", State="NOT_INUSE")
    assert as_login(desk, "SELECT cti.set_presence_v1('dnd')") == [("dnd",)]
    assert presence(conn)["101"] == ("dnd", None)
    as_login(desk, "SELECT cti.set_presence_v1('away', now() + interval '1 hour')")
    (until,) = as_login(desk, "SELECT until FROM cti.presence_v1() WHERE extension = '101'")[0]
    assert until is not None
    conn.execute(
        "UPDATE cti.presence SET desk_until = now() - interval '1 second'"
    )  # the hour passed
    assert presence(conn)["101"] == ("available", None)
    as_login(desk, "SELECT cti.set_presence_v1('dnd')")
    assert as_login(desk, "SELECT cti.set_presence_v1('available')") == [("available",)]
    for state, error in [("lunch", "must be available, away or dnd"), (None, "not NULL")]:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=error):
            as_login(desk, "SELECT cti.set_presence_v1(%s)", [state])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="has passed"):
        as_login(desk, "SELECT cti.set_presence_v1('away', now() - interval '1 minute')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_login(desk, "UPDATE cti.presence SET desk_state = 'dnd'")


def test_a_known_clients_call_goes_to_the_manager_when_free(conn, site):
    crm, _, router = site
    assert route(router, "8 (495) 123-45-67") == ("101", "manager")  # presence unknown: try
    ami(conn, "DeviceStateChange", Device="PJSIP/101", State="INUSE")
    assert route(router, KNOWN) == (None, "the manager is busy")
    ami(conn, "DeviceStateChange", Device="PJSIP/101", State="NOT_INUSE")
    conn.execute("UPDATE cti.presence SET desk_state = 'dnd', desk_since = now()")
    assert route(router, KNOWN) == (None, "the manager is dnd")
    conn.execute("UPDATE cti.presence SET desk_state = NULL")
    assert route(router, KNOWN) == ("101", "manager")
    decisions = conn.execute(
        "SELECT caller, dialled, client_id, manager_id, manager_extension, extension, reason"
        " FROM cti.route_decision ORDER BY id"
    ).fetchall()
    assert decisions[0] == (
        IVANOV,
        "+74950001122",
        crm["ivanov"],
        crm["Petrova"],
        "101",
        "101",
        "manager",
    )
    assert [d[6] for d in decisions] == [
        "manager",
        "the manager is busy",
        "the manager is dnd",
        "manager",
    ]


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        ("+74997770000", "unknown caller"),
        (SHARED, "several clients share the number"),
        ("anonymous", "no caller number"),
        (None, "no caller number"),
        ("102", "an internal caller"),
        ("1'; DROP TABLE cti.call; --" * 5, "no caller number"),
    ],
)
def test_other_callers_go_to_the_pbxs_own_dialplan_with_the_reason(conn, site, caller, reason):
    _, _, router = site
    assert route(router, caller) == (None, reason)
    assert conn.execute("SELECT reason FROM cti.route_decision").fetchall() == [(reason,)]


def test_a_client_without_a_manager_or_a_manager_without_an_extension(conn, site):
    crm, _, router = site
    conn.execute(
        "UPDATE pgcti_refcrm.employee SET extension = NULL WHERE id = %s", [crm["Petrova"]]
    )
    assert route(router, KNOWN) == (None, "the manager has no extension")
    conn.execute("UPDATE pgcti_refcrm.client SET manager_id = NULL WHERE id = %s", [crm["ivanov"]])
    assert route(router, KNOWN) == (None, "the client has no manager")


def test_the_routing_login_may_route_and_nothing_else(conn, site):
    _, desk, router = site
    for statement in (
        "SELECT * FROM cti.route_decision",
        "SELECT * FROM cti.presence",
        "SELECT * FROM cti.whoami_v1()",
        "SELECT cti.dial_v1('84951234567')",
        "SELECT * FROM cti.presence_v1()",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_login(router, statement)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        route(desk, KNOWN)


def now_builder(seed: int) -> CallBuilder:
    return CallBuilder(random.Random(seed), clock=time.time())


def test_each_decision_is_joined_with_what_happened_and_the_share_per_manager(conn, site):
    crm, _, router = site
    # Ivanov calls four times: Petrova (101) answers twice, Sidorov (102) once, nobody once.
    outcomes = []
    for n, answered_by in enumerate(["101", "101", "102", None]):
        route(router, KNOWN)
        b = now_builder(n)
        if answered_by:
            insert_frames(conn, pbx.inbound_answered(b, KNOWN, LINE, answered_by))
        else:
            insert_frames(conn, pbx.inbound_unanswered(b, KNOWN, LINE, ["101"], "NO_ANSWER"))
        outcomes.append(
            conn.execute(
                "SELECT what_happened, answered_by FROM cti.route_decisions_v1 ORDER BY decision_id DESC LIMIT 1"
            ).fetchone()
        )
        conn.execute("UPDATE cti.route_decision SET asked_at = asked_at - interval '1 minute'")
        conn.execute("UPDATE cti.call SET started_at = started_at - interval '1 minute'")
    assert outcomes == [
        ("answered by the manager", "101"),
        ("answered by the manager", "101"),
        ("answered by another", "102"),
        ("not answered", None),
    ]
    # An unknown caller's call counts for no manager.
    insert_frames(conn, pbx.inbound_answered(now_builder(9), "+74997770000", LINE, "102"))
    # Summed over days (the four calls may straddle midnight): by hand, 2 of 4 are Petrova's.
    rows = conn.execute(
        "SELECT manager_id, manager_extension, sum(calls), sum(answered_by_manager),"
        " sum(answered_by_others), sum(not_answered), min(manager_share)"
        " FROM cti.manager_answer_share_v1 GROUP BY 1, 2"
    ).fetchall()
    assert [tuple(r[:6]) for r in rows] == [(crm["Petrova"], "101", 4, 2, 1, 1)]
    if conn.execute("SELECT count(*) FROM cti.manager_answer_share_v1").fetchone()[0] == 1:
        assert float(rows[0][6]) == 0.5


def test_onlinepbx2_blf_events_are_presence_too(conn, site):
    from ingester.simulator import onlinepbx2_calls

    b = now_builder(5)
    frames = pbx.inbound_answered(b, KNOWN, LINE, "102")
    events = onlinepbx2_calls.from_onlinepbx3(frames)
    answered = next(
        i
        for i, e in enumerate(events)
        if e["name"] == "blf" and e["args"][0]["status"] == "answered"
    )
    insert_frames(conn, events[: answered + 1], source="onlinepbx2")
    assert presence(conn)["102"] == ("busy", None)
    insert_frames(conn, events[answered + 1 :], source="onlinepbx2")
    assert presence(conn)["102"] == ("available", None)
