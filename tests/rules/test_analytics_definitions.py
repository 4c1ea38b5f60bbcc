"""The analytics' definitions at their edges (issue 37): clients never reached, callbacks
across days, calls across midnight in a non-UTC zone, calls in progress. Each expected
figure is worked out in Python from the rows a test inserts, by the one-sentence
definitions of docs/sql-analytics.md, not by the views' SQL."""

from __future__ import annotations

from datetime import datetime

from tests.rules.test_analytics_views import DAY, L1, rows, s


def test_missed_not_called_back_includes_clients_never_reached(conn):
    """A client whose only call was missed (or busy) was never called back: the flag is
    true, as the docs define it (a missed inbound call newer than the last answered one,
    and there is none). Issue 37, part 1: it came out false for 47 such clients."""
    calls = {  # client -> its calls: (minute started, outcome)
        101: [(0, "busy")],
        102: [(0, "missed"), (5, "answered")],
        103: [(0, "answered"), (5, "abandoned")],
        104: [(0, "answered")],
        105: [(0, "missed"), (3, "missed")],
    }
    for client, its_calls in calls.items():
        for minute, outcome in its_calls:
            conn.execute(
                """INSERT INTO cti.call (source, pbx_call_id, direction, client_id, client_match,
                                         external_number, started_at, answered_at, ended_at, outcome)
                   VALUES ('onlinepbx3', %s, 'inbound', %s, 'exact', '+79160000000',
                           %s::timestamptz, %s::timestamptz, %s::timestamptz, %s)""",
                [
                    f"nr-{client}-{minute}",
                    client,
                    f"{DAY} 10:{minute:02d}:00",
                    f"{DAY} 10:{minute:02d}:10" if outcome == "answered" else None,
                    f"{DAY} 10:{minute:02d}:30",
                    outcome,
                ],
            )
    expected = {}  # worked out from the rows above, not from the view's SQL
    for client, its_calls in calls.items():
        missed = [m for m, o in its_calls if o in ("missed", "abandoned", "busy")]
        answered = [m for m, o in its_calls if o == "answered"]
        expected[client] = bool(missed) and (not answered or max(missed) > max(answered))
    got = dict(
        conn.execute(
            "SELECT client_id, missed_not_called_back FROM cti.client_contact_summary_v1"
            " WHERE client_id BETWEEN 101 AND 105"
        ).fetchall()
    )
    assert got == expected == {101: True, 102: False, 103: True, 104: False, 105: True}
    # The summary's other columns, worked out the same way.
    for row in rows(
        conn, "SELECT * FROM cti.client_contact_summary_v1 WHERE client_id BETWEEN 101 AND 105"
    ):
        mine = calls[row["client_id"]]
        missed = [m for m, o in mine if o in ("missed", "abandoned", "busy")]
        answered = [m for m, o in mine if o == "answered"]
        at = lambda minute: datetime.fromisoformat(f"{DAY} 10:{minute:02d}:00+00:00")  # noqa: E731
        assert (row["calls"], row["inbound_calls"], row["missed_calls"]) == (
            len(mine),
            len(mine),
            len(missed),
        )
        assert row["last_call_at"] == at(max(m for m, _ in mine))
        assert row["last_missed_at"] == (at(max(missed)) if missed else None)
        assert row["avg_response_time"] == (s(10) if answered else None)


def test_the_edges_calls_across_midnight_in_progress_and_callbacks_across_days(conn):
    """Issue 37, parts 2-4, in Moscow time (UTC+3). Expected figures are worked out in
    Python from the rows inserted here, by the rules of docs/sql-analytics.md.
    - a busy call from 23:59:54 to 00:00:00: the call and its task count on the first day;
    - a missed call at 23:50 called back at 00:10 the next day by 101: the callback counts
      on the missed call's day in the daily and in the employee view alike;
    - a call answered and still going on counts as answered, in the answer rate too;
    - a call still ringing counts among the inbound calls only."""
    conn.execute("SET TIME ZONE 'Europe/Moscow'")
    day1, day2 = "2026-03-01", "2026-03-02"
    calls = [  # key, direction, start, answered, end, outcome, by (all Moscow time)
        ("busy", "inbound", f"{day1} 23:59:54", None, f"{day2} 00:00:00", "busy", None),
        ("missed", "inbound", f"{day1} 23:50:00", None, f"{day1} 23:50:30", "missed", None),
        (
            "back",
            "outbound",
            f"{day2} 00:09:50",
            f"{day2} 00:10:00",
            f"{day2} 00:12:00",
            "answered",
            "101",
        ),
        ("going", "inbound", f"{day2} 10:00:00", f"{day2} 10:00:20", None, None, "102"),
        ("ringing", "inbound", f"{day2} 11:00:00", None, None, None, None),
        ("done", "inbound", f"{day2} 09:00:00", None, f"{day2} 09:00:40", "abandoned", None),
    ]
    ids = {}
    for key, direction, start, answered, end, outcome, by in calls:
        ids[key] = conn.execute(
            """INSERT INTO cti.call (source, pbx_call_id, direction, dialled, client_match, external_number,
                                     started_at, answered_at, answered_by, ended_at, outcome)
               VALUES ('onlinepbx3', %s, %s, %s, 'none', '+79160001111', %s::timestamptz,
                       %s::timestamptz, %s, %s::timestamptz, %s) RETURNING id""",
            [
                f"edge-{key}",
                direction,
                L1 if direction == "inbound" else None,
                start,
                answered,
                by,
                end,
                outcome,
            ],
        ).fetchone()[0]
    for key, closed_by, closed_at in (("busy", None, None), ("missed", "back", f"{day2} 00:10:00")):
        conn.execute(
            """INSERT INTO cti.callback_task (party, e164, dialled, first_call_id, last_call_id, created_at,
                                             due_at, closed_at, closed_by_call_id, closed_by_extension, closed_how)
               SELECT 'number:' || %s, '+79160001111', %s, c.id, c.id, c.ended_at, c.ended_at + interval '1 minute',
                      %s::timestamptz, %s, %s, %s FROM cti.call c WHERE c.id = %s""",
            [
                key,
                L1,
                closed_at,
                ids.get(closed_by),
                "101" if closed_by else None,
                "outbound_answered" if closed_by else None,
                ids[key],
            ],
        )
    # By hand: the days of the calls and tasks, in Moscow.
    expected = {
        day1: {
            "inbound_calls": 2,
            "answered": 0,
            "missed": 1,
            "busy": 1,
            "abandoned": 0,
            "answer_rate": 0.0,
            "callbacks_made": 1,
            "missed_never_called_back": 1,
        },
        day2: {
            "inbound_calls": 3,
            "answered": 1,
            "missed": 0,
            "busy": 0,
            "abandoned": 1,
            "answer_rate": 0.5,
            "callbacks_made": 0,
            "missed_never_called_back": 0,
        },
    }
    got = {
        str(r["day"]): {k: (float(r[k]) if k == "answer_rate" else r[k]) for k in expected[day1]}
        for r in rows(conn, "SELECT * FROM cti.daily_call_stats_v1 WHERE all_lines ORDER BY day")
    }
    assert got == expected
    employee = {
        (str(r["day"]), r["extension"]): (r["answered_inbound"], r["callbacks_made"])
        for r in rows(conn, "SELECT * FROM cti.employee_call_stats_v1")
    }
    assert employee[(day1, "101")] == (0, 1), "the callback on the missed call's day"
    assert employee[(day2, "102")] == (1, 0), "the call going on is answered"
    assert (day2, "101") not in employee or employee[(day2, "101")][1] == 0
