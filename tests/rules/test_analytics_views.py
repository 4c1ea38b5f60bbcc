"""The analytics views (db/logic/85_analytics.sql) against a small history computed by hand.

The history is written straight into cti.call and cti.callback_task, so every time is
known to the second; the figures below were worked out on paper from it."""

from __future__ import annotations

from datetime import timedelta

import pytest

L1, L2 = "+74950001122", "+74950003344"
DAY = "2026-01-10"


@pytest.fixture
def history(conn):
    conn.execute("SET TIME ZONE 'UTC'")
    petrova, sidorov = (
        conn.execute(
            "INSERT INTO pgcti_refcrm.employee (surname, extension) VALUES (%s, %s) RETURNING id",
            [s, e],
        ).fetchone()[0]
        for s, e in [("Petrova", "101"), ("Sidorov", "102")]
    )
    clients = [
        conn.execute(
            "INSERT INTO pgcti_refcrm.client (name, manager_id) VALUES (%s, %s) RETURNING id",
            [f"Client {n}", petrova],
        ).fetchone()[0]
        for n in range(1, 5)
    ]
    calls = {}
    rows = [  # n, direction, line, client (index), match, number, start, answered, by, end, outcome
        (
            1,
            "inbound",
            L1,
            0,
            "exact",
            "+79160000001",
            "10:00:00",
            "10:00:10",
            "101",
            "10:05:00",
            "answered",
        ),
        (
            2,
            "inbound",
            L1,
            1,
            "new",
            "+79160000002",
            "11:00:00",
            "11:00:30",
            "102",
            "11:04:00",
            "answered",
        ),
        (
            3,
            "inbound",
            L1,
            2,
            "exact",
            "+79160000003",
            "12:00:00",
            None,
            None,
            "12:00:40",
            "missed",
        ),
        (
            4,
            "inbound",
            L1,
            3,
            "exact",
            "+79160000004",
            "13:00:00",
            None,
            None,
            "13:00:30",
            "abandoned",
        ),
        (
            5,
            "inbound",
            L2,
            None,
            "none",
            "+79160000005",
            "14:00:00",
            None,
            None,
            "14:00:05",
            "busy",
        ),
        (
            6,
            "inbound",
            L2,
            None,
            "none",
            "+79160000005",
            "15:00:00",
            "15:00:20",
            "101",
            "15:02:00",
            "answered",
        ),
        (
            7,
            "outbound",
            None,
            2,
            "exact",
            "+79160000003",
            "12:29:50",
            "12:30:00",
            "101",
            "12:33:00",
            "answered",
        ),
    ]
    for n, direction, line, client, match, number, start, answered, by, end, outcome in rows:
        calls[n] = conn.execute(
            """INSERT INTO cti.call (source, pbx_call_id, direction, dialled, client_id, client_match,
                                     external_number, started_at, answered_at, answered_by, ended_at, outcome)
               VALUES ('onlinepbx3', %s, %s, %s, %s, %s, %s, %s::timestamptz, %s::timestamptz, %s,
                       %s::timestamptz, %s) RETURNING id""",
            [
                f"call-{n}",
                direction,
                line,
                None if client is None else clients[client],
                match,
                number,
                f"{DAY} {start}",
                answered and f"{DAY} {answered}",
                by,
                f"{DAY} {end}",
                outcome,
            ],
        ).fetchone()[0]
    tasks = [  # party, first call, created, closed by call, closed at, by, how
        (f"client:{clients[2]}", 3, "12:00:40", 7, "12:30:00", "101", "outbound_answered"),
        (f"client:{clients[3]}", 4, "13:00:30", None, None, None, None),
        ("number:+79160000005", 5, "14:00:05", 6, "15:00:20", "101", "inbound_answered"),
    ]
    for party, first, created, by_call, closed, ext, how in tasks:
        conn.execute(
            """INSERT INTO cti.callback_task (party, e164, dialled, first_call_id, last_call_id, created_at,
                                              due_at, closed_at, closed_by_call_id, closed_by_extension, closed_how)
               SELECT %s, c.external_number, c.dialled, c.id, c.id, %s::timestamptz, %s::timestamptz + interval '1 hour',
                      %s::timestamptz, %s, %s, %s FROM cti.call c WHERE c.id = %s""",
            [
                party,
                f"{DAY} {created}",
                f"{DAY} {created}",
                closed and f"{DAY} {closed}",
                by_call and calls[by_call],
                ext,
                how,
                calls[first],
            ],
        )
    deals = [  # client, manager, opened, won
        (1, sidorov, "2026-01-11", "2026-01-15"),
        (2, petrova, "2026-01-12", None),
        (0, petrova, "2025-12-01", "2025-12-20"),  # before the client's first call: not counted
    ]
    for client, manager, opened, won in deals:
        conn.execute(
            """INSERT INTO pgcti_refcrm.deal (client_id, manager_id, stage, opened_at, closed_at)
               VALUES (%s, %s, %s, %s::timestamptz, %s::timestamptz)""",
            [clients[client], manager, "won" if won else "open", opened, won],
        )
    return {"clients": clients, "petrova": petrova, "sidorov": sidorov}


def rows(conn, sql: str) -> list[dict]:
    cur = conn.execute(sql)
    return [dict(zip([c.name for c in cur.description], r, strict=True)) for r in cur]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def test_daily_call_stats_per_line_and_for_the_day(conn, history):
    got = {
        ("all" if r["all_lines"] else r["line"]): r
        for r in rows(conn, f"SELECT * FROM cti.daily_call_stats_v1 WHERE day = '{DAY}'")
    }
    assert set(got) == {L1, L2, "all"}
    l1, l2, day = got[L1], got[L2], got["all"]
    assert (l1["inbound_calls"], l1["answered"], l1["missed"], l1["abandoned"], l1["busy"]) == (
        4,
        2,
        1,
        1,
        0,
    )
    assert float(l1["answer_rate"]) == 0.5
    assert (l1["response_p50"], l1["response_p90"]) == (s(20), s(28))  # of 10 s and 30 s
    assert (l1["leads_registered"], l1["callbacks_made"], l1["missed_never_called_back"]) == (
        1,
        1,
        1,
    )
    assert l1["time_to_callback_p50"] == s(29 * 60 + 20)  # 12:00:40 -> 12:30:00
    assert l1["reached_when_they_called_again"] == 0
    assert (l2["inbound_calls"], l2["answered"], l2["busy"], float(l2["answer_rate"])) == (
        2,
        1,
        1,
        0.5,
    )
    assert (l2["response_p50"], l2["response_p90"]) == (s(20), s(20))
    assert (
        l2["callbacks_made"],
        l2["reached_when_they_called_again"],
        l2["missed_never_called_back"],
    ) == (0, 1, 0)
    assert day["line"] is None
    assert (
        day["inbound_calls"],
        day["answered"],
        day["missed"],
        day["abandoned"],
        day["busy"],
    ) == (6, 3, 1, 1, 1)
    assert (day["response_p50"], day["response_p90"]) == (s(20), s(28))  # of 10, 20, 30 s
    assert (day["leads_registered"], day["callbacks_made"], day["missed_never_called_back"]) == (
        1,
        1,
        1,
    )


def test_employee_call_stats(conn, history):
    got = {
        r["extension"]: r
        for r in rows(conn, f"SELECT * FROM cti.employee_call_stats_v1 WHERE day = '{DAY}'")
    }
    assert set(got) == {"101", "102"}
    a, b = got["101"], got["102"]
    assert (a["answered_inbound"], a["response_p50"], a["response_p90"]) == (
        2,
        s(15),
        s(19),
    )  # 10 s, 20 s
    assert (a["answered_outbound"], a["callbacks_made"], a["time_to_callback_p50"]) == (
        1,
        1,
        s(1760),
    )
    assert (
        b["answered_inbound"],
        b["response_p50"],
        b["answered_outbound"],
        b["callbacks_made"],
    ) == (1, s(30), 0, 0)


def test_the_sales_funnel_by_line_by_manager_and_for_the_month(conn, history):
    # Nested stages: client 2 was registered by its first call (a lead) and won a deal;
    # client 3 has a deal too, but was a client before it called: not a lead of this funnel.
    got = rows(conn, "SELECT * FROM cti.sales_funnel_v1 WHERE month = '2026-01-01'")
    month = next(r for r in got if r["by"] == "all")
    assert (month["callers"], month["leads"], month["with_deal"], month["won"]) == (5, 1, 1, 1)
    assert (float(month["lead_rate"]), float(month["deal_rate"]), float(month["win_rate"])) == (
        0.2,
        1.0,
        1.0,
    )
    by_line = {
        r["first_line"]: (r["callers"], r["leads"], r["with_deal"], r["won"])
        for r in got
        if r["by"] == "line"
    }
    assert by_line == {L1: (4, 1, 1, 1), L2: (1, 0, 0, 0)}
    by_manager = {
        r["manager_id"]: (r["callers"], r["with_deal"], r["won"])
        for r in got
        if r["by"] == "manager"
    }
    assert by_manager == {
        history["sidorov"]: (1, 1, 1),
        history["petrova"]: (1, 0, 0),
        None: (3, 0, 0),
    }
