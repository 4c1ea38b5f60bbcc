-- `pgcti report`: the analytics views, per day, hour and stage.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: report_time_zone
SELECT set_config('TimeZone', %(time_zone)s, false);

-- name: report_daily
-- Every day of the period, with zeros for days without calls.
SELECT d::date AS day, coalesce(s.inbound_calls, 0), coalesce(s.answered, 0), coalesce(s.missed, 0),
       coalesce(s.abandoned, 0), coalesce(s.busy, 0), s.answer_rate,
       coalesce(s.missed_never_called_back, 0), coalesce(s.callbacks_made, 0), coalesce(s.rejected, 0)
  FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
  LEFT JOIN cti.daily_call_stats_v1 s ON s.day = d::date AND s.all_lines
 ORDER BY 1;

-- name: report_hourly
SELECT h, count(c.id)
  FROM generate_series(0, 23) h
  LEFT JOIN cti.call c ON c.direction = 'inbound' AND extract(hour FROM c.started_at) = h
                      AND c.started_at >= %(first)s::date AND c.started_at < %(last)s::date + 1
 GROUP BY h ORDER BY h;

-- name: report_response_seconds
SELECT extract(epoch FROM c.answered_at - c.started_at)::float8
  FROM cti.call c
 WHERE c.direction = 'inbound' AND c.outcome = 'answered'
   AND c.started_at >= %(first)s::date AND c.started_at < %(last)s::date + 1;

-- name: report_funnel
SELECT coalesce(sum(f.callers), 0), coalesce(sum(f.leads), 0), coalesce(sum(f.with_deal), 0), coalesce(sum(f.won), 0)
  FROM cti.sales_funnel_v1 f
 WHERE f.by = 'all' AND f.month >= date_trunc('month', %(first)s::date) AND f.month <= %(last)s::date;

-- name: report_summary
SELECT * FROM cti.period_summary_v1(%(first)s::date, %(last)s::date);

-- name: report_manager_share
-- Known clients' inbound calls in the period, per manager: answered by that manager, by
-- another, not answered (db/logic/58_routing.sql).
SELECT coalesce(max(m.manager_surname), 'employee ' || m.manager_id) || coalesce(' (' || m.manager_extension || ')', ''),
       sum(m.answered_by_manager), sum(m.answered_by_others), sum(m.not_answered)
  FROM cti.manager_answer_share_v1 m
 WHERE m.day BETWEEN %(first)s::date AND %(last)s::date
 GROUP BY m.manager_id, m.manager_extension
 ORDER BY sum(m.calls) DESC, 1
 LIMIT 30;

-- name: report_queues
-- Per queue over the period (db/logic/86_queue_analytics.sql): calls answered, abandoned,
-- timed out or left otherwise, and the service level over the whole period.
SELECT s.queue, sum(s.answered), sum(s.abandoned), sum(s.timed_out) + sum(s.other_exits),
       round(sum(s.answered_within_target)::numeric
             / nullif(sum(s.answered) + sum(s.abandoned) - sum(s.abandoned_short) + sum(s.timed_out) + sum(s.other_exits), 0), 3),
       max(s.longest_wait_seconds)
  FROM cti.queue_stats_between(%(first)s::date, %(last)s::date + 1) s  -- the period's stays only
 WHERE s.hour IS NULL
 GROUP BY s.queue ORDER BY s.queue;

-- name: report_not_called_back
-- Missed calls not called back yet: each open callback task, oldest first, with the client,
-- its owner (by name: the CRM's, else the lookup's for a client's manager) and how long it
-- has waited (db/logic/57_callbacks.sql). Now, whatever the period.
SELECT t.id, t.created_at, t.e164, coalesce(c.client_card ->> 'client_name', ''),
       CASE WHEN t.owner_id IS NULL THEN 'nobody'
            ELSE coalesce(coalesce(cti.crm_employee_name(t.owner_id),
                                   CASE WHEN t.owner_rule = 'manager' THEN c.client_card ->> 'manager_surname' END)
                          || ' (employee ' || t.owner_id || ')', 'employee ' || t.owner_id) END,
       t.missed_calls, t.due_at, round(extract(epoch FROM now() - t.created_at) / 3600, 1)
  FROM cti.callback_task t
  JOIN cti.call c ON c.id = t.last_call_id
 WHERE t.closed_at IS NULL
 ORDER BY t.created_at, t.id;

-- name: report_managers
-- Per manager over the period (cti.manager_summary_v1), by the name the CRM gives
-- (cti.crm_employee_name), else by id.
SELECT coalesce(cti.crm_employee_name(m.employee_id), 'employee ' || m.employee_id)
       || coalesce(' (' || m.extension || ')', ''),
       m.calls_taken, m.their_calls, m.answered, m.answer_rate, m.missed, m.callbacks_made,
       extract(epoch FROM m.time_to_callback_p50)::float8, extract(epoch FROM m.time_to_callback_p90)::float8,
       m.never_called_back
  FROM cti.manager_summary_v1(%(first)s::date, %(last)s::date) m
 ORDER BY m.their_calls DESC, m.calls_taken DESC, 1;

-- name: report_funnel_months
-- The funnel per month of the first call, for the whole team and per deal manager
-- (cti.sales_funnel_v1; manager NULL: no deal, or a deal with no manager).
SELECT f.month, f.by, coalesce(cti.crm_employee_name(f.manager_id), 'employee ' || f.manager_id),
       f.callers, f.leads, f.with_deal, f.won
  FROM cti.sales_funnel_v1 f
 WHERE f.by IN ('all', 'manager') AND f.month >= date_trunc('month', %(first)s::date) AND f.month <= %(last)s::date
 ORDER BY f.month, f.by, f.manager_id NULLS LAST;
