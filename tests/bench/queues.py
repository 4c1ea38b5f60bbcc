"""`make bench`, part 7: the queue views at 10k and 1M queue calls.

    python -m tests.bench.queues [--small 10000] [--large 1000000]

Queue stays and the members rung for them are generated in SQL (a year of them, 4 queues,
20 agents, the shares of a busy call centre: 8 in 10 answered, 1 in 10 abandoned, 1 timed
out, every answered call after one member rang out in 3 of 10), in two scratch databases
on one server; each view is read as a supervisor's screen reads it (30 days), alternating
between the sizes, and as the report and the wallboard read them (their span only). It
prints the median time of each and the ratio large / small.
Nothing here asserts a speed.
"""

from __future__ import annotations

from tests.bench.workload import views_at_two_sizes

GENERATE = """
INSERT INTO cti.queue_call (source, caller_leg, queue, call_key, joined_at, join_position, connected_at, agent,
                            completed_at, talk_seconds, ended_by, abandoned_at, abandon_wait_seconds, left_at, exit_status)
SELECT 'asterisk', 'q' || g, 'queue' || (g % 4), 'q' || g, j, 1 + g % 5,
       CASE WHEN g % 10 < 8 THEN j + (g % 45) * interval '1 second' END,
       CASE WHEN g % 10 < 8 THEN (101 + g % 20)::text END,
       CASE WHEN g % 10 < 8 THEN j + (g % 45 + 60 + g % 300) * interval '1 second' END,
       CASE WHEN g % 10 < 8 THEN 60 + g % 300 END, CASE WHEN g % 10 < 8 THEN 'caller' END,
       CASE WHEN g % 10 = 8 THEN j + (g % 90) * interval '1 second' END, CASE WHEN g % 10 = 8 THEN g % 90 END,
       j + (g % 45) * interval '1 second', CASE WHEN g % 10 = 9 THEN 'TIMEOUT' END
  FROM generate_series(1, %(calls)s) g
 CROSS JOIN LATERAL (SELECT now() - interval '365 days' * (g::float8 / %(calls)s) AS j) x;
INSERT INTO cti.queue_attempt (source, agent_leg, caller_leg, queue, agent, called_at, ring_seconds, result)
SELECT 'asterisk', 'a' || q.caller_leg, q.caller_leg, q.queue, coalesce(q.agent, (101 + length(q.caller_leg) % 20)::text),
       q.joined_at + interval '1 second', 4, CASE WHEN q.agent IS NOT NULL THEN 'answered' ELSE 'no_answer' END
  FROM cti.queue_call q;
ANALYZE;
"""

READS = {
    "queue_stats_v1, 30 days by day": "SELECT * FROM cti.queue_stats_v1 WHERE hour IS NULL AND day > current_date - 30",
    "queue_stats_v1, 30 days by hour": "SELECT * FROM cti.queue_stats_v1 WHERE hour IS NOT NULL AND day > current_date - 30",
    "queue_agent_stats_v1, 30 days": "SELECT * FROM cti.queue_agent_stats_v1 WHERE day > current_date - 30",
    # What the report and the wallboard read: the span's stays only, by the index on joined_at.
    "queue_stats_between, 30 days (the report)": "SELECT * FROM cti.queue_stats_between(current_date - 29, current_date + 1)",
    "queue_stats_between, today (the wallboard)": "SELECT * FROM cti.queue_stats_between(current_date, current_date + 1)",
}


def main() -> None:
    views_at_two_sizes(GENERATE, READS, "queue calls and the members rung for them", "queues")


if __name__ == "__main__":
    main()
