"""Queue facts and a supervisor's figures (db/logic/53_queue_facts.sql, 86_queue_analytics.sql)
from real Asterisk streams: the live lab's recordings (a caller answered by the second
member after the first rang out; a caller who abandoned), checked against figures worked
out here from the recorded events themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingester.queries import query
from ingester.simulator.ami_server import blocks_of
from ingester.simulator.asterisk_calls import block
from tests.support.ami_traces import chan, dest
from tests.support.asterisk_lab import RECORDINGS
from tests.support.crm_fixture import insert_frames, seed_crm

pytestmark = pytest.mark.rolled_back


def events(scenario: str) -> list[dict[str, str]]:
    """The recording's blocks as dicts (the first value of each key), read in Python."""
    found = []
    for b in blocks_of(RECORDINGS / f"{scenario}.ami"):
        fields: dict[str, str] = {}
        for line in b.split("\r\n"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        found.append(fields)
    return found


def at(e: dict[str, str]) -> datetime:
    return datetime.fromtimestamp(float(e["Timestamp"]), UTC)


def first(found: list[dict], name: str, **match: str) -> dict:
    return next(
        e for e in found if e.get("Event") == name and all(e.get(k) == v for k, v in match.items())
    )


def replay(conn, *scenarios: str) -> None:
    seed_crm(conn)
    conn.execute("SET TIME ZONE 'UTC'")
    for scenario in scenarios:
        insert_frames(conn, blocks_of(RECORDINGS / f"{scenario}.ami"), source="asterisk")


def test_a_caller_answered_by_the_second_member_after_the_first_rang_out(conn):
    found = events("queue_second_member")
    replay(conn, "queue_second_member")
    join, connect = first(found, "QueueCallerJoin"), first(found, "AgentConnect")
    complete, ring_out = first(found, "AgentComplete"), first(found, "AgentRingNoAnswer")
    stay = conn.execute(
        "SELECT queue, joined_at, join_position, connected_at, agent, talk_seconds, ended_by, abandoned_at"
        " FROM cti.queue_call"
    ).fetchall()
    assert stay == [
        (
            join["Queue"],
            at(join),
            int(join["Position"]),
            at(connect),
            connect["Interface"].split("/")[1],
            int(complete["TalkTime"]),
            complete["Reason"],
            None,
        )
    ]
    attempts = conn.execute(
        "SELECT agent, result, ring_seconds FROM cti.queue_attempt ORDER BY called_at"
    ).fetchall()
    assert attempts[0] == ("103", "no_answer", int(ring_out["RingTime"]) / 1000)
    assert attempts[1][:2] == ("104", "answered")


def test_the_figures_of_a_day_with_an_answered_and_an_abandoned_caller(conn):
    answered_run, abandoned_run = events("queue_second_member"), events("queue_abandoned")
    replay(conn, "queue_second_member", "queue_abandoned")
    # By hand, from the recorded events: one answered after (connect - join) seconds, one
    # abandoned after the abandon's HoldTime; the target is 20 s, short abandons under 5 s.
    waited = (
        at(first(answered_run, "AgentConnect")) - at(first(answered_run, "QueueCallerJoin"))
    ).total_seconds()
    abandon = first(abandoned_run, "QueueCallerAbandon")
    short = int(abandon["HoldTime"]) < 5
    row = conn.execute(
        "SELECT offered, answered, abandoned, abandoned_short, answered_within_target, service_level,"
        " longest_wait_seconds, avg_handle_seconds FROM cti.queue_stats_v1 WHERE hour IS NULL"
    ).fetchone()
    expected_level = round(1 / (2 - short), 3)
    talk = int(first(answered_run, "AgentComplete")["TalkTime"])
    assert row[:5] == (2, 1, 1, int(short), 1 if waited <= 20 else 0)
    assert float(row[5]) == expected_level
    assert float(row[6]) == pytest.approx(max(waited, int(abandon["HoldTime"])), abs=0.01)
    assert float(row[7]) == talk
    # The report's queue chart reads the same figures over its period.
    day = at(first(answered_run, "QueueCallerJoin")).date()
    (reported,) = conn.execute(query("report_queues"), {"first": day, "last": day}).fetchall()
    assert reported[:4] == ("sales", 1, 1, 0) and float(reported[4]) == expected_level
    # A queue of its own target: 1 second, and the answer came later than that.
    conn.execute("INSERT INTO cti.queue_setting (queue, service_level_seconds) VALUES ('sales', 1)")
    (within,) = conn.execute(
        "SELECT answered_within_target FROM cti.queue_stats_v1 WHERE hour IS NULL"
    ).fetchone()
    assert within == (1 if waited <= 1 else 0)
    agents = conn.execute(
        "SELECT agent, rung, answered, rang_out, talk_seconds FROM cti.queue_agent_stats_v1 ORDER BY agent"
    ).fetchall()
    rung_103 = sum(
        1
        for e in answered_run + abandoned_run
        if e.get("Event") == "AgentCalled" and e["Interface"] == "PJSIP/103"
    )
    assert agents == [("103", rung_103, 0, 1, 0), ("104", 1, 1, 0, talk)]


def test_a_caller_who_left_by_a_key_is_told_from_one_who_timed_out(conn):
    """The lab's caller pressed 5 (the queue's context took the call): Asterisk sends
    QueueCallerLeave and no QUEUESTATUS, which it sets for every other way out (its
    app_queue.c: set_queue_result only for a known reason)."""
    found = events("queue_exit_by_key")
    replay(conn, "queue_exit_by_key")
    join, leave = first(found, "QueueCallerJoin"), first(found, "QueueCallerLeave")
    assert not [e for e in found if e.get("Event") in ("AgentConnect", "QueueCallerAbandon")]
    assert not [e for e in found if e.get("Variable") == "QUEUESTATUS"]
    stay = conn.execute(
        "SELECT queue, joined_at, left_at, connected_at, abandoned_at, exit_status FROM cti.queue_call"
    ).fetchall()
    assert stay == [(join["Queue"], at(join), at(leave), None, None, None)]
    row = conn.execute(
        "SELECT offered, answered, abandoned, timed_out, other_exits, exited_by_key,"
        " longest_wait_seconds FROM cti.queue_stats_v1 WHERE hour IS NULL"
    ).fetchone()
    assert row[:6] == (1, 0, 0, 0, 1, 1)
    assert float(row[6]) == pytest.approx((at(leave) - at(join)).total_seconds(), abs=0.01)
    # A timeout, for contrast: QUEUESTATUS comes, and the exit is not by key.
    conn.execute("UPDATE cti.queue_call SET exit_status = 'TIMEOUT'")
    assert conn.execute(
        "SELECT timed_out, other_exits, exited_by_key FROM cti.queue_stats_v1 WHERE hour IS NULL"
    ).fetchone() == (1, 0, 0)


@pytest.mark.parametrize(
    "leaving, outcome", [("QueueCallerLeave", "missed"), ("QueueCallerAbandon", "abandoned")]
)
def test_a_queue_that_lets_its_caller_go_is_missed_a_caller_who_gives_up_abandoned(
    conn, leaving, outcome
):
    """The key-exit recording: the queue cancelled the member's ring and let the caller go
    (QueueCallerLeave); the caller did not give up. The same stream with the caller giving
    up (QueueCallerAbandon in its place) is abandoned."""
    seed_crm(conn)
    blocks = [
        b.replace("Event: QueueCallerLeave", f"Event: {leaving}")
        for b in blocks_of(RECORDINGS / "queue_exit_by_key.ami")
    ]
    insert_frames(conn, blocks, source="asterisk")
    assert conn.execute(
        "SELECT outcome, answered_by FROM cti.call_history_v1 WHERE direction = 'inbound'"
    ).fetchall() == [(outcome, None)]


def test_a_caller_who_timed_out_and_a_paused_member(conn):
    seed_crm(conn)
    conn.execute("SET TIME ZONE 'UTC'")
    t = 1796567000.0
    caller = {
        "Uniqueid": "1796567000.1",
        "Linkedid": "1796567000.1",
        "Channel": "PJSIP/carrier-00000001",
        "Queue": "sales",
    }
    insert_frames(
        conn,
        [
            block(
                "QueueMemberPause",
                {
                    "Timestamp": t,
                    "Queue": "sales",
                    "Interface": "PJSIP/103",
                    "Paused": 1,
                    "PausedReason": "lunch",
                },
            ),
            block("QueueCallerJoin", {**caller, "Timestamp": t + 1, "Position": 1, "Count": 1}),
            block("QueueCallerLeave", {**caller, "Timestamp": t + 61, "Position": 1, "Count": 0}),
            block(
                "VarSet",
                {**caller, "Timestamp": t + 61, "Variable": "QUEUESTATUS", "Value": "TIMEOUT"},
            ),
            block(
                "QueueMemberPause",
                {"Timestamp": t + 600, "Queue": "sales", "Interface": "PJSIP/103", "Paused": 0},
            ),
        ],
        source="asterisk",
    )
    row = conn.execute(
        "SELECT offered, answered, abandoned, timed_out, longest_wait_seconds FROM cti.queue_stats_v1 WHERE hour IS NULL"
    ).fetchone()
    assert row[:4] == (1, 0, 0, 1) and float(row[4]) == 60
    # The pause, from when it came to when it ended (arrival times: a pause is live only).
    (pauses, paused) = conn.execute(
        "SELECT pauses, paused_seconds FROM cti.queue_agent_stats_v1 WHERE agent = '103'"
    ).fetchone()
    assert pauses == 1 and paused is not None
    assert conn.execute("SELECT reason FROM cti.queue_pause").fetchall() == [("lunch",)]
    failed = conn.execute(
        "SELECT count(*) FROM cti.event_outcome WHERE status = 'failed'"
    ).fetchone()[0]
    assert failed == 0


def test_a_rebuild_makes_the_queue_facts_again(conn):
    replay(conn, "queue_second_member", "queue_abandoned")
    before = conn.execute("SELECT * FROM cti.queue_call ORDER BY caller_leg").fetchall()
    conn.execute("SELECT * FROM cti.rebuild()")
    assert conn.execute("SELECT * FROM cti.queue_call ORDER BY caller_leg").fetchall() == before


def test_the_wallboard_shows_the_queues_now(conn):
    seed_crm(conn)
    # The board counts "today" in the session's zone and from the transaction's now(): the
    # calls below start up to 30 s before it, so take a zone where it is about noon, and
    # they all fall on one day whenever the test runs.
    now = float(conn.execute("SELECT extract(epoch FROM now())").fetchone()[0])
    conn.execute(f"SET TIME ZONE {12 - datetime.fromtimestamp(now, UTC).hour}")
    waiting = {
        **chan("PJSIP/mts-00000091", "9.1", "84951112233", "74950001133", "from-pstn", 6, "9.1")
    }
    served = {
        **chan("PJSIP/mts-00000092", "9.2", "84951234567", "74950001133", "from-pstn", 6, "9.2")
    }
    member = dest(chan("PJSIP/103-00000093", "9.3", "<unknown>", "s", "from-queue", 5, "9.2"))
    queue = {"Queue": "sales", "Interface": "PJSIP/103", "MemberName": "PJSIP/103"}
    insert_frames(
        conn,
        [
            block(
                "QueueCallerJoin",
                {**served, "Queue": "sales", "Timestamp": now - 30, "Position": 1},
            ),
            block("AgentCalled", {**served, **member, **queue, "Timestamp": now - 29}),
            block(
                "AgentConnect",
                {**served, **member, **queue, "Timestamp": now - 25, "HoldTime": 5, "RingTime": 4},
            ),
            block(
                "QueueCallerJoin",
                {**waiting, "Queue": "sales", "Timestamp": now - 12, "Position": 1},
            ),
            block("DeviceStateChange", {"Device": "PJSIP/103", "State": "INUSE"}),
        ],
        source="asterisk",
    )
    failed = conn.execute("SELECT detail FROM cti.event_outcome WHERE status = 'failed'").fetchall()
    assert failed == []
    token = conn.execute("SELECT cti.issue_wallboard_token_v1()").fetchone()[0]
    (board,) = conn.execute("SELECT cti.gateway_wallboard_v1(%s)", [token]).fetchone()
    (sales,) = board["queues"]
    assert (sales["waiting"], sales["agents_talking"], sales["agents_free"]) == (1, 1, 0)
    assert 11 <= sales["longest_wait_seconds"] <= 14
    # 1 answered within 20 s, of the 1 no longer waiting (the waiting caller is not judged yet)
    assert (sales["offered_today"], sales["service_level_today"]) == (2, 1.0)
