"""`make bench`, part 4: the analytics views at 1M calls, against the same views at 10k.

    python -m tests.bench.analytics [--small 10000] [--large 1000000]

Calls, callback tasks and deals are generated in SQL (a year of them, lines, extensions,
outcomes in realistic shares) in two scratch databases on one server, analyzed, then each
view is read the way `pgcti report` reads it (a 30-day window, and the whole funnel), on
the server, alternating between the sizes. It prints the median time of each, and the
ratio large / small. Nothing here asserts a speed.
"""

from __future__ import annotations

from tests.bench.workload import views_at_two_sizes

# A year of calls: 8 lines, 30 extensions, clients 1..calls/4; the outcome shares of a
# real sales line (7 in 10 answered).
GENERATE = """
INSERT INTO pgcti_refcrm.employee (surname, extension)
SELECT 'Emp' || e, e::text FROM generate_series(101, 130) e;
INSERT INTO pgcti_refcrm.client (name, manager_id)
SELECT 'Client ' || g, (SELECT min(id) FROM pgcti_refcrm.employee) + g % 30
  FROM generate_series(1, greatest(%(calls)s / 4, 1)) g;
INSERT INTO cti.call (source, pbx_call_id, direction, dialled, client_id, client_match, external_number,
                      started_at, answered_at, answered_by, ended_at, outcome, client_card)
SELECT 'onlinepbx3', 'bench-' || g, d, CASE WHEN d = 'inbound' THEN '+7495000000' || (g % 8) END,
       (SELECT min(id) FROM pgcti_refcrm.client) + (g::bigint * 7919) % greatest(%(calls)s / 4, 1),
       CASE WHEN g % 9 = 0 THEN 'new' ELSE 'exact' END, '+7916' || lpad(((g::bigint * 7919) % 9999999)::text, 7, '0'),
       s, CASE WHEN o = 'answered' THEN s + (5 + g % 40) * interval '1 second' END,
       CASE WHEN o = 'answered' THEN (101 + g % 30)::text END, s + (30 + g % 300) * interval '1 second', o,
       CASE WHEN g % 9 <> 0 THEN jsonb_build_object(  -- the client's manager, as the lookup gave it
           'manager_id', (SELECT min(id) FROM pgcti_refcrm.employee) + ((g::bigint * 7919) % greatest(%(calls)s / 4, 1) + 1) % 30) END
  FROM generate_series(1, %(calls)s) g
 CROSS JOIN LATERAL (SELECT CASE WHEN g % 10 < 8 THEN 'inbound' ELSE 'outbound' END AS d,
                            now() - interval '365 days' * (g::float8 / %(calls)s) AS s,
                            CASE WHEN g % 10 < 7 THEN 'answered' WHEN g % 10 = 7 THEN 'missed'
                                 WHEN g % 10 = 8 THEN 'abandoned' ELSE 'busy' END AS o) x;
INSERT INTO cti.callback_task (party, client_id, e164, dialled, first_call_id, last_call_id, created_at,
                               due_at, closed_at, closed_by_call_id, closed_by_extension, closed_how)
SELECT 'call:' || c.id, c.client_id, c.external_number, c.dialled, c.id, c.id, c.ended_at, c.ended_at + interval '1 hour',
       CASE WHEN c.id % 4 <> 0 THEN c.ended_at + interval '20 minutes' END, NULL,
       CASE WHEN c.id % 4 <> 0 THEN (101 + c.id % 30)::text END,
       CASE WHEN c.id % 4 <> 0 THEN 'outbound_answered' END
  FROM cti.call c WHERE c.direction = 'inbound' AND c.outcome <> 'answered';
INSERT INTO pgcti_refcrm.deal (client_id, manager_id, stage, opened_at, closed_at)
SELECT c.id, c.manager_id, CASE WHEN c.id % 3 = 0 THEN 'won' ELSE 'open' END,
       now() - interval '200 days', CASE WHEN c.id % 3 = 0 THEN now() - interval '100 days' END
  FROM pgcti_refcrm.client c WHERE c.id % 5 = 0;
ANALYZE;
"""

READS = {
    "daily_call_stats_v1, 30 days": "SELECT count(*) FROM cti.daily_call_stats_v1 WHERE day > now()::date - 30",
    "employee_call_stats_v1, 30 days": "SELECT count(*) FROM cti.employee_call_stats_v1 WHERE day > now()::date - 30",
    "sales_funnel_v1, 12 months": "SELECT count(*) FROM cti.sales_funnel_v1",
    "call_history_v1, 30 days": "SELECT count(*) FROM cti.call_history_v1 WHERE started_at > now() - interval '30 days'",
    "manager_summary_v1, 30 days": "SELECT count(*) FROM cti.manager_summary_v1(now()::date - 29, now()::date)",
}


def main() -> None:
    views_at_two_sizes(GENERATE, READS, "calls with their callback tasks and deals", "analytics")


if __name__ == "__main__":
    main()
