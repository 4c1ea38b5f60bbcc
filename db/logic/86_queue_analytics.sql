-- Queues, measured the way call centres measure them (Asternic, QueueMetrics).
--
-- Rules:
-- - A call counts on the day and hour it joined the queue (the session's time zone, as the
--   other analytics). Offered: every caller who joined. Answered: connected to an agent.
--   Abandoned: hung up while waiting; "short" abandons (under the queue's
--   short_abandon_seconds, 5 by default: a wrong number, a mis-dial) are counted apart and
--   left out of the service level. Timed out: left by the queue's timeout (QUEUESTATUS
--   TIMEOUT); other exits (full, empty, a key) together, and exits by key apart: a caller
--   who left, neither answered nor abandoned, with no QUEUESTATUS (app_queue sets one for
--   every other way out, and none when a key takes the caller to the queue's context).
-- - Service level: answered within the queue's service_level_seconds (20 by default) of
--   joining, over offered less short abandons and less callers still waiting.
-- - Wait: from joining to the answer, the abandon, or leaving; average and longest over
--   every caller who is no longer waiting. Handle time: AgentComplete's TalkTime (the
--   talk; AMI gives no wrap-up), average over answered calls.
-- - Per agent: rung (each time a member was rung for a caller), answered, rang out, talk
--   time, and pauses (how many began that day, and their time, QueueMemberPause).
-- - Rows per queue and day (hour NULL), and per queue, day and hour.

-- The figures of the callers who joined from p_from until before p_until, per queue and day
-- (hour NULL) and per hour: the view below is this over all time. The wallboard asks for
-- today and the report for its period, and the index on joined_at serves both (a filter on
-- the view's day cannot: the day is computed, so it would read every stay ever).
CREATE OR REPLACE FUNCTION cti.queue_stats_between(p_from timestamptz, p_until timestamptz)
RETURNS TABLE (queue text, day date, hour int, offered bigint, answered bigint, abandoned bigint,
               abandoned_short bigint, timed_out bigint, other_exits bigint, answered_within_target bigint,
               service_level numeric, avg_wait_seconds numeric, longest_wait_seconds numeric,
               avg_handle_seconds numeric, exited_by_key bigint)
LANGUAGE sql STABLE PARALLEL SAFE  -- a SQL-standard body: inlined into the view and its readers
BEGIN ATOMIC
    WITH stays AS (
        SELECT q.queue, q.joined_at::date AS day, extract(hour FROM q.joined_at)::int AS hour,
               q.connected_at IS NOT NULL AS answered,
               q.abandoned_at IS NOT NULL AND q.connected_at IS NULL AS abandoned,
               q.abandoned_at IS NOT NULL AND q.connected_at IS NULL
                   AND coalesce(q.abandon_wait_seconds, extract(epoch FROM q.abandoned_at - q.joined_at))
                       < coalesce(s.short_abandon_seconds, 5) AS short_abandon,
               q.connected_at IS NULL AND q.abandoned_at IS NULL AND q.exit_status = 'TIMEOUT' AS timed_out,
               q.connected_at IS NULL AND q.abandoned_at IS NULL AND q.left_at IS NOT NULL
                   AND q.exit_status IS DISTINCT FROM 'TIMEOUT' AS other_exit,
               q.connected_at IS NULL AND q.abandoned_at IS NULL AND q.left_at IS NOT NULL
                   AND q.exit_status IS NULL AS key_exit,
               CASE WHEN q.connected_at IS NOT NULL THEN extract(epoch FROM q.connected_at - q.joined_at)
                    WHEN q.abandoned_at IS NOT NULL THEN coalesce(q.abandon_wait_seconds, extract(epoch FROM q.abandoned_at - q.joined_at))
                    WHEN q.left_at IS NOT NULL THEN extract(epoch FROM q.left_at - q.joined_at) END AS wait_seconds,
               q.connected_at IS NULL AND q.abandoned_at IS NULL AND q.left_at IS NULL AS still_waiting,
               q.talk_seconds, coalesce(s.service_level_seconds, 20) AS target
          FROM cti.queue_call q
          LEFT JOIN cti.queue_setting s ON s.queue = q.queue
         WHERE q.joined_at >= p_from AND q.joined_at < p_until
    )
    SELECT queue, day, hour,
           count(*) AS offered,
           count(*) FILTER (WHERE answered) AS answered,
           count(*) FILTER (WHERE abandoned) AS abandoned,
           count(*) FILTER (WHERE short_abandon) AS abandoned_short,
           count(*) FILTER (WHERE timed_out) AS timed_out,
           count(*) FILTER (WHERE other_exit) AS other_exits,
           count(*) FILTER (WHERE answered AND wait_seconds <= target) AS answered_within_target,
           round(count(*) FILTER (WHERE answered AND wait_seconds <= target)::numeric
                 / nullif(count(*) - count(*) FILTER (WHERE short_abandon OR still_waiting), 0), 3) AS service_level,
           round(avg(wait_seconds)::numeric, 1) AS avg_wait_seconds,
           max(wait_seconds) AS longest_wait_seconds,
           round(avg(talk_seconds) FILTER (WHERE answered)::numeric, 1) AS avg_handle_seconds,
           count(*) FILTER (WHERE key_exit) AS exited_by_key  -- added last: columns keep their places
      FROM stays
     GROUP BY GROUPING SETS ((queue, day), (queue, day, hour));
END;

CREATE OR REPLACE VIEW cti.queue_stats_v1 AS
SELECT * FROM cti.queue_stats_between('-infinity', 'infinity');

COMMENT ON VIEW cti.queue_stats_v1 IS 'Per queue and day (hour NULL), and per hour: offered, answered, abandoned (short ones apart), timed out, other exits (by key apart), service level, average and longest wait, handle time';

CREATE OR REPLACE VIEW cti.queue_agent_stats_v1 AS
WITH work AS (
    SELECT a.queue, a.called_at::date AS day, a.agent,
           1 AS rung, (a.result = 'answered')::int AS answered, (a.result = 'no_answer')::int AS rang_out,
           0 AS talk_seconds, 0 AS pauses, 0::numeric AS paused_seconds
      FROM cti.queue_attempt a WHERE a.called_at IS NOT NULL AND a.agent IS NOT NULL
    UNION ALL
    SELECT q.queue, q.joined_at::date, q.agent, 0, 0, 0, coalesce(q.talk_seconds, 0), 0, 0
      FROM cti.queue_call q WHERE q.agent IS NOT NULL AND q.joined_at IS NOT NULL
    UNION ALL
    SELECT p.queue, p.paused_at::date, p.agent, 0, 0, 0, 0, 1,
           extract(epoch FROM coalesce(p.resumed_at, now()) - p.paused_at)
      FROM cti.queue_pause p
)
SELECT queue, day, agent,
       sum(rung) AS rung, sum(answered) AS answered, sum(rang_out) AS rang_out,
       sum(talk_seconds) AS talk_seconds, sum(pauses) AS pauses, round(sum(paused_seconds), 0) AS paused_seconds
  FROM work
 GROUP BY queue, day, agent;

COMMENT ON VIEW cti.queue_agent_stats_v1 IS 'Per queue, day and agent: rung, answered, rang out, talk time, pauses and their time';
