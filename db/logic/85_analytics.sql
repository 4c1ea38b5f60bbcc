-- Analytics: what a sales team and its supervisor look at every day, and the funnel.
--
-- Rules:
-- - Days and months are those of the session's time zone: a report for Moscow runs
--   `SET TIME ZONE 'Europe/Moscow'` first (pgcti report does, with --time-zone).
-- - Inbound calls count on the day they started, on the line called (`dialled`). A call
--   is answered once someone answered it, even while it goes on; missed, abandoned, busy
--   and rejected are the outcomes of calls that ended unanswered (four columns: "missed"
--   alone is the outcome missed). A call still ringing counts among the inbound calls and
--   in no other column. The answer rate is answered / (answered + missed + abandoned + busy
--   + rejected): calls still ringing are left out of it.
-- - Response time runs from the start of a call to its first answer; p50 and p90 are over
--   the answered inbound calls (percentile_cont: interpolated between the two nearest).
-- - Callbacks come from callback tasks (57_callbacks.sql), and count, in every view, on
--   the day the missed call that opened the task started (the day that call counts on): a
--   task closed by an answered outbound call is a callback made, and its time to callback
--   runs from the end of that missed call to the answer; a task closed by the client's
--   next answered inbound call was reached, not called back; a task still open and past
--   due is a missed call never called back (one per task, whatever the calls it holds; a
--   task not yet due is waiting, not counted).
-- - Per manager, a call is the employee's who would own its callback task (the callback
--   policy of 57_callbacks.sql), answered by whoever; calls taken are those answered at
--   their own extension.
-- - A lead registered from a call is a call whose number the CRM registered (match 'new').
-- - Per-line rows carry `all_lines = false`; one row per day with `all_lines = true` and
--   line NULL sums every line (percentiles are computed over the day, not summed).
-- - The funnel follows each party (a client, or an unknown number) from its first inbound
--   call ever, through nested stages: a lead if that call registered it; of the leads,
--   those with a deal in the CRM (cti.crm_deals) opened since; of those, the ones with a
--   deal won. Rows per month of that first call, by the line it called and by the manager
--   of its deal, and for the whole month. A caller whose first call found a lead the CRM
--   already had (crm_lookup's record_kind 'lead') counts in known_leads; it is a party by
--   its number, and has no deals of its own (crm_deals gives clients').
-- Versioned like the client API: a change of columns is a _v2 beside the _v1; a column
-- added last keeps every client's reading of the others.

-- The day a callback task counts on, in every view: the day the missed call that opened
-- it started (in the session's time zone), as that call counts on it.
CREATE OR REPLACE FUNCTION cti.task_day(p_task cti.callback_task) RETURNS date
LANGUAGE sql STABLE  -- a SQL-standard body: names resolved now, no search_path to redirect
RETURN coalesce((SELECT c.started_at FROM cti.call c WHERE c.id = p_task.first_call_id), p_task.created_at)::date;

CREATE OR REPLACE VIEW cti.daily_call_stats_v1 AS
WITH calls AS (
    SELECT c.started_at::date AS day, c.dialled AS line, c.client_match,
           CASE WHEN c.answered_at IS NOT NULL THEN 'answered' ELSE c.outcome END AS outcome,
           c.answered_at - c.started_at AS response_time
      FROM cti.call c
     WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
), per_calls AS (
    SELECT day, line, GROUPING(line) = 1 AS all_lines,
           count(*) AS inbound_calls,
           count(*) FILTER (WHERE outcome = 'answered') AS answered,
           count(*) FILTER (WHERE outcome = 'missed') AS missed,
           count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
           count(*) FILTER (WHERE outcome = 'busy') AS busy,
           count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
           round(count(*) FILTER (WHERE outcome = 'answered')::numeric
                 / nullif(count(*) FILTER (WHERE outcome IN ('answered', 'missed', 'abandoned', 'busy', 'rejected')), 0), 3) AS answer_rate,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE outcome = 'answered') AS response_p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE outcome = 'answered') AS response_p90,
           count(*) FILTER (WHERE client_match = 'new') AS leads_registered
      FROM calls
     GROUP BY GROUPING SETS ((day, line), (day))
), tasks AS (
    SELECT cti.task_day(t) AS day, t.dialled AS line, t.closed_how,
           t.closed_how IS NULL AND t.due_at < now() AS past_due,
           c.answered_at - t.created_at AS time_to_callback
      FROM cti.callback_task t
      LEFT JOIN cti.call c ON c.id = t.closed_by_call_id
), per_tasks AS (
    SELECT day, line, GROUPING(line) = 1 AS all_lines,
           count(*) FILTER (WHERE closed_how = 'outbound_answered') AS callbacks_made,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_callback)
               FILTER (WHERE closed_how = 'outbound_answered') AS time_to_callback_p50,
           count(*) FILTER (WHERE closed_how = 'inbound_answered') AS reached_when_they_called_again,
           count(*) FILTER (WHERE past_due) AS missed_never_called_back
      FROM tasks
     GROUP BY GROUPING SETS ((day, line), (day))
)
SELECT coalesce(c.day, t.day) AS day, coalesce(c.all_lines, t.all_lines) AS all_lines,
       coalesce(c.line, t.line) AS line,
       coalesce(c.inbound_calls, 0) AS inbound_calls, coalesce(c.answered, 0) AS answered,
       coalesce(c.missed, 0) AS missed, coalesce(c.abandoned, 0) AS abandoned, coalesce(c.busy, 0) AS busy,
       c.answer_rate, c.response_p50, c.response_p90,
       coalesce(t.callbacks_made, 0) AS callbacks_made, t.time_to_callback_p50,
       coalesce(t.reached_when_they_called_again, 0) AS reached_when_they_called_again,
       coalesce(t.missed_never_called_back, 0) AS missed_never_called_back,
       coalesce(c.leads_registered, 0) AS leads_registered,
       coalesce(c.rejected, 0) AS rejected  -- added last: a view's columns keep their places
  FROM per_calls c
  FULL JOIN per_tasks t ON t.day = c.day AND t.all_lines = c.all_lines
                       AND t.line IS NOT DISTINCT FROM c.line;

COMMENT ON VIEW cti.daily_call_stats_v1 IS 'Per day and line (and per day, all_lines): inbound, answered, missed, abandoned, busy, rejected, answer rate, response p50/p90, callbacks made, time to callback, never called back, leads';

CREATE OR REPLACE VIEW cti.employee_call_stats_v1 AS
WITH work AS (
    SELECT c.started_at::date AS day, c.answered_by AS extension, c.direction,
           c.answered_at - c.started_at AS response_time, NULL::interval AS time_to_callback, false AS callback
      FROM cti.call c
     WHERE c.answered_by IS NOT NULL AND c.started_at IS NOT NULL
    UNION ALL
    SELECT cti.task_day(t), t.closed_by_extension, 'callback', NULL, t.closed_at - t.created_at, true
      FROM cti.callback_task t
     WHERE t.closed_how = 'outbound_answered' AND t.closed_by_extension IS NOT NULL
)
SELECT day, extension,
       count(*) FILTER (WHERE direction = 'inbound') AS answered_inbound,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE direction = 'inbound') AS response_p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE direction = 'inbound') AS response_p90,
       count(*) FILTER (WHERE direction = 'outbound') AS answered_outbound,
       count(*) FILTER (WHERE callback) AS callbacks_made,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY time_to_callback) FILTER (WHERE callback) AS time_to_callback_p50
  FROM work
 GROUP BY day, extension;

COMMENT ON VIEW cti.employee_call_stats_v1 IS 'Per day and extension: inbound calls answered, response p50/p90, outbound calls answered, callbacks made and their time to callback';

-- Per manager over a period [p_first, p_last] (days of the session's time zone): one owner
-- for a call's figures and its callback task, so that "missed" and "called back" count the
-- same calls; percentiles over the whole period (daily ones do not add up).
CREATE OR REPLACE FUNCTION cti.manager_summary_v1(p_first date, p_last date)
RETURNS TABLE (employee_id bigint, extension text, calls_taken bigint, their_calls bigint,
               answered bigint, missed bigint, answer_rate numeric, callbacks_made bigint,
               time_to_callback_p50 interval, time_to_callback_p90 interval, never_called_back bigint)
LANGUAGE sql STABLE
SECURITY DEFINER  -- for its readers (cti_reader): the figures, not the rows behind them
SET search_path = pg_catalog, pg_temp
AS $$
    WITH calls AS (
        SELECT (cti.callback_owner(c)).owner_id AS employee_id, c.answered_at IS NOT NULL AS answered,
               c.answered_at IS NULL AND c.outcome IN ('missed', 'abandoned', 'busy', 'rejected') AS unanswered
          FROM cti.call c
         WHERE c.direction = 'inbound' AND c.started_at::date BETWEEN p_first AND p_last
    ), per_calls AS (
        SELECT k.employee_id, count(*) FILTER (WHERE k.answered) AS answered,
               count(*) FILTER (WHERE k.unanswered) AS missed
          FROM calls k WHERE k.employee_id IS NOT NULL
         GROUP BY k.employee_id
    ), per_tasks AS (
        SELECT t.owner_id AS employee_id,
               count(*) FILTER (WHERE t.closed_how = 'outbound_answered') AS callbacks_made,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.answered_at - t.created_at)
                   FILTER (WHERE t.closed_how = 'outbound_answered') AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY b.answered_at - t.created_at)
                   FILTER (WHERE t.closed_how = 'outbound_answered') AS p90,
               count(*) FILTER (WHERE t.closed_how IS NULL AND t.due_at < now()) AS never_called_back
          FROM cti.callback_task t
          LEFT JOIN cti.call b ON b.id = t.closed_by_call_id
         WHERE t.owner_id IS NOT NULL AND cti.task_day(t) BETWEEN p_first AND p_last
         GROUP BY t.owner_id
    ), people AS (  -- each employee's extension, asked once
        SELECT p.employee_id, cti.crm_extension_for_employee(p.employee_id) AS extension
          FROM (SELECT k.employee_id FROM per_calls k UNION SELECT t.employee_id FROM per_tasks t) p
    ), taken AS (
        SELECT c.answered_by AS extension, count(*) AS calls_taken
          FROM cti.call c
         WHERE c.direction = 'inbound' AND c.answered_by IS NOT NULL
           AND c.started_at::date BETWEEN p_first AND p_last
         GROUP BY c.answered_by
    )
    SELECT p.employee_id, p.extension, coalesce(x.calls_taken, 0),
           coalesce(k.answered, 0) + coalesce(k.missed, 0), coalesce(k.answered, 0), coalesce(k.missed, 0),
           round(k.answered::numeric / nullif(k.answered + k.missed, 0), 3),
           coalesce(t.callbacks_made, 0), t.p50, t.p90, coalesce(t.never_called_back, 0)
      FROM people p
      LEFT JOIN per_calls k ON k.employee_id = p.employee_id
      LEFT JOIN per_tasks t ON t.employee_id = p.employee_id
      LEFT JOIN taken x ON x.extension = p.extension
$$;

COMMENT ON FUNCTION cti.manager_summary_v1(date, date) IS 'Per employee responsible for calls (their callback owner) over a period: calls taken at their extension, their calls answered and missed, answer rate, callbacks made, time to callback p50/p90, never called back';

CREATE OR REPLACE VIEW cti.sales_funnel_v1 AS
WITH first_calls AS (
    SELECT DISTINCT ON (party) party, client_id, started_at, dialled, client_match = 'new' AS registered,
           kind = 'lead' AND client_match <> 'new' AS known_lead
      FROM (SELECT cti.callback_party(CASE WHEN cti.client_kind(c) = 'client' THEN c.client_id END,
                                      c.external_number) AS party,
                   CASE WHEN cti.client_kind(c) = 'client' THEN c.client_id END AS client_id,
                   cti.client_kind(c) AS kind, c.started_at, c.dialled, c.client_match
              FROM cti.call c
             WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
               AND c.external_number IS NOT NULL AND NOT cti.is_extension(c.external_number)) p
     ORDER BY party, started_at
), deals AS MATERIALIZED (
    SELECT * FROM cti.crm_deals()  -- asked once, not once per party
), stages AS (
    SELECT date_trunc('month', f.started_at)::date AS month, f.dialled AS first_line,
           min(x.manager_id) AS manager_id, f.registered, f.known_lead, count(x.client_id) > 0 AS with_deal,
           coalesce(bool_or(x.won_at IS NOT NULL), false) AS won
      FROM first_calls f
      LEFT JOIN deals x ON x.client_id = f.client_id AND x.opened_at >= f.started_at
     GROUP BY f.party, f.started_at, f.dialled, f.registered, f.known_lead
)
SELECT month,
       CASE WHEN GROUPING(first_line) = 0 THEN 'line' WHEN GROUPING(manager_id) = 0 THEN 'manager' ELSE 'all' END AS by,
       first_line, manager_id,
       count(*) AS callers,
       count(*) FILTER (WHERE registered) AS leads,
       count(*) FILTER (WHERE registered AND with_deal) AS with_deal,
       count(*) FILTER (WHERE registered AND won) AS won,
       round(count(*) FILTER (WHERE registered)::numeric / nullif(count(*), 0), 3) AS lead_rate,
       round(count(*) FILTER (WHERE registered AND with_deal)::numeric
             / nullif(count(*) FILTER (WHERE registered), 0), 3) AS deal_rate,
       round(count(*) FILTER (WHERE registered AND won)::numeric
             / nullif(count(*) FILTER (WHERE registered AND with_deal), 0), 3) AS win_rate,
       count(*) FILTER (WHERE known_lead) AS known_leads  -- added last: columns keep their places
  FROM stages
 GROUP BY GROUPING SETS ((month, first_line), (month, manager_id), (month));

COMMENT ON VIEW cti.sales_funnel_v1 IS 'Per month of first call (by line, by deal manager, all): callers; leads registered by the call; of those, with a deal since; of those, won; rates; callers the CRM already had as a lead';

-- The headline of a period [p_first, p_last] (days of the session's time zone), each figure
-- counting exactly that span: inbound calls and how many were answered (the daily view's
-- rules), the callback tasks of the period never called back, the first-time callers (a
-- party whose first inbound call ever started in the period and whom the CRM did not know
-- then: the call registered it, or it stayed unknown), and the deals won in the period
-- (cti.crm_deals, won_at in the period, any client's).
CREATE OR REPLACE FUNCTION cti.period_summary_v1(p_first date, p_last date)
RETURNS TABLE (inbound_calls bigint, answered bigint, ended_unanswered bigint, answer_rate numeric,
               never_called_back bigint, first_time_callers bigint, deals_won bigint)
LANGUAGE sql STABLE
SECURITY DEFINER  -- for its readers (cti_reader): the figures, not the rows behind them
SET search_path = pg_catalog, pg_temp
AS $$
    WITH days AS (
        SELECT * FROM cti.daily_call_stats_v1 d WHERE d.all_lines AND d.day BETWEEN p_first AND p_last
    ), firsts AS (
        SELECT DISTINCT ON (party) party, started_at, client_match
          FROM (SELECT cti.callback_party(CASE WHEN cti.client_kind(c) = 'client' THEN c.client_id END,
                                          c.external_number) AS party, c.started_at, c.client_match
                  FROM cti.call c
                 WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
                   AND c.external_number IS NOT NULL AND NOT cti.is_extension(c.external_number)) p
         ORDER BY party, started_at
    )
    SELECT coalesce(sum(d.inbound_calls), 0)::bigint, coalesce(sum(d.answered), 0)::bigint,
           coalesce(sum(d.missed + d.abandoned + d.busy + d.rejected), 0)::bigint,
           round(sum(d.answered) / nullif(sum(d.answered + d.missed + d.abandoned + d.busy + d.rejected), 0), 3),
           coalesce(sum(d.missed_never_called_back), 0)::bigint,
           (SELECT count(*) FROM firsts f
             WHERE f.started_at::date BETWEEN p_first AND p_last AND f.client_match IN ('new', 'none')),
           (SELECT count(*) FROM cti.crm_deals() x WHERE x.won_at::date BETWEEN p_first AND p_last)
      FROM days d
$$;

COMMENT ON FUNCTION cti.period_summary_v1(date, date) IS 'A period''s headline: inbound, answered, ended unanswered, answer rate, never called back, first-time callers, deals won, each within the period';
