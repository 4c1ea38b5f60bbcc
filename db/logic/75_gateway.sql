-- Browser clients through `pgcti gateway`: pull and ack by token, and what a desk's page,
-- a wallboard and a cloud PBX ask (the tokens themselves: 74_gateway_tokens.sql).
--
-- Rules:
-- - A browser token reads back only what its stream has not acknowledged, and what came
--   in the last 2 minutes (a page that reconnects after a blip): not a desk's history.
-- - The gateway's login (cti_gateway) can call only the gateway_*_v1 functions (versioned
--   like the client API; the names without _v1 stay for one release): check a token, pull
--   and ack for the token's login. It reads no table, so its password alone opens no
--   desk's stream.
-- - A wallboard token (a DBA issues it for a supervisor's screen) shows the whole floor
--   now: calls ringing and talking per line, each desk's state, callback tasks past due.
--   It opens no desk's stream, and a desk token opens no wallboard.

-- The gateway's API (granted to cti_gateway only) ----------------------------------------

-- Who the token is, and the channels to LISTEN on for it: whoami_v1 for its login.
CREATE OR REPLACE FUNCTION cti.gateway_whoami_v1(p_token text)
RETURNS TABLE (login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.streams_of(cti.token_binding(p_token)) $$;

-- Items of one of the token's streams after p_after (default: after its ack). A browser
-- token reads back what is not acknowledged yet and what came in the last 2 minutes (for
-- a page that reconnects): a stolen token does not open a desk's history.
CREATE OR REPLACE FUNCTION cti.gateway_pull_v1(p_token text, p_stream text, p_after bigint DEFAULT NULL,
                                            p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER  -- not sql: planned once per session (50_call_facts.sql)
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_binding cti.client_login := cti.token_binding(p_token);
    v_kind text := CASE p_stream WHEN 'commands' THEN 'ws' ELSE 'emp' END;
    v_id bigint := CASE p_stream WHEN 'commands' THEN v_binding.workstation_id ELSE v_binding.employee_id END;
    v_acked bigint;
    v_floor bigint;
BEGIN
    IF p_stream NOT IN ('commands', 'notifications') THEN
        RETURN;
    END IF;
    SELECT a.acked_seq INTO v_acked FROM cti.stream_ack a WHERE a.target_kind = v_kind AND a.target_id = v_id;
    -- The newest acknowledged item older than the read-back window: nothing up to it is read.
    SELECT o.seq INTO v_floor FROM cti.outbox o
     WHERE o.target_kind = v_kind AND o.target_id = v_id AND o.seq <= coalesce(v_acked, 0)
       AND o.created_at <= now() - interval '2 minutes'
     ORDER BY o.seq DESC LIMIT 1;
    RETURN QUERY
    SELECT p.* FROM cti.pull(v_kind, v_id, greatest(coalesce(p_after, v_acked, 0), coalesce(v_floor, 0)), p_limit) p;
END
$$;

CREATE OR REPLACE FUNCTION cti.gateway_ack_v1(p_token text, p_stream text, p_seq bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER  -- not sql: planned once per session (50_call_facts.sql)
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT cti.ack(CASE p_stream WHEN 'commands' THEN 'ws' ELSE 'emp' END,
                           CASE p_stream WHEN 'commands' THEN b.workstation_id ELSE b.employee_id END, p_seq)
              FROM cti.token_binding(p_token) b
             WHERE p_stream IN ('commands', 'notifications'));
END
$$;

COMMENT ON FUNCTION cti.gateway_whoami_v1(text) IS 'Gateway: the token''s login, streams and channels (whoami_v1 by token)';
COMMENT ON FUNCTION cti.gateway_pull_v1(text, text, bigint, int) IS 'Gateway: pull one of the token''s streams (commands or notifications)';
COMMENT ON FUNCTION cti.gateway_ack_v1(text, text, bigint) IS 'Gateway: acknowledge one of the token''s streams';

-- The last contacts with the caller of a call this token's desk was sent a card for (its
-- client's calls, or its number's when there is no client), newest first.
CREATE OR REPLACE FUNCTION cti.gateway_contacts_v1(p_token text, p_call_id bigint, p_limit int DEFAULT 5)
RETURNS TABLE (call_id bigint, started_at timestamptz, direction text, outcome text, answered_by text,
               duration interval)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.id, h.started_at, h.direction, h.outcome, h.answered_by,
           h.ended_at - coalesce(h.answered_at, h.started_at)
      FROM cti.token_binding(p_token) b
      JOIN cti.call c ON c.id = p_call_id
     CROSS JOIN LATERAL (SELECT * FROM cti.call h
                          WHERE h.id <> c.id
                            AND CASE WHEN c.client_id IS NOT NULL THEN h.client_id = c.client_id
                                     ELSE h.external_number = c.external_number END
                          ORDER BY h.started_at DESC NULLS LAST
                          LIMIT least(greatest(p_limit, 1), 20)) h
     WHERE EXISTS (SELECT FROM cti.outbox o WHERE o.target_kind = 'ws' AND o.target_id = b.workstation_id
                                              AND o.call_id = p_call_id AND o.type = 'open_card')
$$;

COMMENT ON FUNCTION cti.gateway_contacts_v1(text, bigint, int) IS 'Gateway: the last contacts with the caller of a call whose card the token''s desk was sent';

-- Click-to-call from the desk page: the token's desk dials (54_dialing.sql), and sees its
-- requests of the last hour.
CREATE OR REPLACE FUNCTION cti.gateway_dial_v1(p_token text, p_number text, p_client_id bigint DEFAULT NULL) RETURNS uuid
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.dial_for(cti.token_binding(p_token), p_number, p_client_id) $$;

COMMENT ON FUNCTION cti.gateway_dial_v1(text, text, bigint) IS 'Gateway: the token''s desk places a call (dial_v1 by token)';

CREATE OR REPLACE FUNCTION cti.gateway_dial_requests_v1(p_token text)
RETURNS TABLE (request_id uuid, number text, client_id bigint, state text, reason text,
               requested_at timestamptz, sent_at timestamptz, decided_at timestamptz,
               call_id bigint, call_link text, call_outcome text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.dial_requests_of((cti.token_binding(p_token)).login, interval '1 hour') $$;

COMMENT ON FUNCTION cti.gateway_dial_requests_v1(text) IS 'Gateway: the token''s desk''s dial requests of the last hour';

-- The token's desk as people know it: the workstation's name and extension (the desk page's title).
CREATE OR REPLACE FUNCTION cti.gateway_desk_v1(p_token text)
RETURNS TABLE (login name, workstation_id bigint, name text, extension text, presence text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.login, b.workstation_id,
           coalesce(cti.crm_workstation_name(b.workstation_id), 'workstation ' || b.workstation_id),
           x.extension, coalesce((SELECT cti.presence_state(p) FROM cti.presence p WHERE p.extension = x.extension), 'unknown')
      FROM cti.token_binding(p_token) b
     CROSS JOIN LATERAL (SELECT cti.crm_extension_for_workstation(b.workstation_id) AS extension) x
$$;

COMMENT ON FUNCTION cti.gateway_desk_v1(text) IS 'Gateway: the token''s desk by name and extension, and its presence';

-- The desk page's away / do not disturb button (56_presence.sql).
CREATE OR REPLACE FUNCTION cti.gateway_set_presence_v1(p_token text, p_state text, p_until timestamptz DEFAULT NULL) RETURNS text
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.set_desk_presence(cti.token_binding(p_token), p_state, p_until) $$;

COMMENT ON FUNCTION cti.gateway_set_presence_v1(text, text, timestamptz) IS 'Gateway: the token''s desk sets its presence (set_presence_v1 by token)';

CREATE OR REPLACE FUNCTION cti.gateway_route_v1(p_token text, p_caller text, p_dialled text DEFAULT NULL)
RETURNS TABLE (extension text, reason text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.live_token(p_token, 'router');
    RETURN QUERY SELECT * FROM cti.route_v1(p_caller, p_dialled);
END
$$;

COMMENT ON FUNCTION cti.gateway_route_v1(text, text, text) IS 'Gateway: route_v1 for a router token (GET /route)';

-- The floor now, for a wallboard token: calls ringing and talking per line, each desk's
-- state, callback tasks past due (most overdue first).
CREATE OR REPLACE FUNCTION cti.gateway_wallboard_v1(p_token text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.live_token(p_token, 'wallboard');
    RETURN jsonb_build_object(
        'at', now(),
        'lines', coalesce((
            -- talking_without_desk: answered on an extension no desk is bound to, so that
            -- the lines' talking and the desks' talking can be told apart.
            SELECT jsonb_agg(jsonb_build_object('line', l.line, 'ringing', l.ringing, 'talking', l.talking,
                                                'talking_without_desk', l.talking_without_desk) ORDER BY l.line)
              FROM (SELECT coalesce(c.dialled, 'outbound') AS line,
                           count(*) FILTER (WHERE c.answered_at IS NULL AND c.direction = 'inbound') AS ringing,
                           count(*) FILTER (WHERE c.answered_at IS NOT NULL) AS talking,
                           count(*) FILTER (WHERE c.answered_at IS NOT NULL AND c.card_workstation_id IS NULL) AS talking_without_desk
                      FROM cti.call c WHERE c.ended_at IS NULL AND c.direction IN ('inbound', 'outbound')
                     GROUP BY 1) l), '[]'),
        'desks', coalesce((
            SELECT jsonb_agg(jsonb_build_object('workstation_id', w.id, 'name', coalesce(cti.crm_workstation_name(w.id), 'workstation ' || w.id),
                                                'state', CASE WHEN c.id IS NULL THEN 'idle' ELSE 'talking' END,
                                                'extension', coalesce(c.holder_extension, w.extension), 'since', c.answered_at,
                                                'presence', coalesce(cti.presence_state(p), 'unknown'),
                                                'presence_since', cti.presence_since(p)) ORDER BY w.id)
              FROM (SELECT d.id, cti.crm_extension_for_workstation(d.id) AS extension
                      FROM (SELECT DISTINCT b.workstation_id AS id FROM cti.client_login b WHERE b.workstation_id IS NOT NULL) d) w
              LEFT JOIN cti.presence p ON p.extension = w.extension
              LEFT JOIN LATERAL (SELECT * FROM cti.call c WHERE c.ended_at IS NULL AND c.card_workstation_id = w.id
                                  ORDER BY c.answered_at LIMIT 1) c ON true), '[]'),
        -- Queues now: callers waiting and the longest wait; the agents seen in the queue
        -- today by their presence; today's service level (86_queue_analytics.sql).
        'queues', coalesce((
            SELECT jsonb_agg(jsonb_build_object('queue', q.queue, 'waiting', q.waiting,
                                                'longest_wait_seconds', q.longest_wait,
                                                'agents_free', a.free, 'agents_paused', a.paused, 'agents_talking', a.talking,
                                                'service_level_today', st.service_level, 'offered_today', st.offered)
                             ORDER BY q.queue)
              FROM (SELECT c.queue,
                           count(*) FILTER (WHERE c.connected_at IS NULL AND c.abandoned_at IS NULL AND c.left_at IS NULL) AS waiting,
                           round(max(extract(epoch FROM now() - c.joined_at))
                                 FILTER (WHERE c.connected_at IS NULL AND c.abandoned_at IS NULL AND c.left_at IS NULL)) AS longest_wait
                      FROM cti.queue_call c WHERE c.joined_at >= current_date GROUP BY c.queue) q
              LEFT JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE s.state IN ('available', 'unknown')) AS free,
                           count(*) FILTER (WHERE s.state = 'paused') AS paused,
                           count(*) FILTER (WHERE s.state = 'busy') AS talking
                      FROM (SELECT DISTINCT t.agent FROM cti.queue_attempt t
                             WHERE t.queue = q.queue AND t.called_at >= current_date AND t.agent IS NOT NULL) m
                      LEFT JOIN cti.presence p ON p.extension = m.agent
                     CROSS JOIN LATERAL (SELECT coalesce(cti.presence_state(p), 'unknown') AS state) s) a ON true
              LEFT JOIN cti.queue_stats_between(current_date, current_date + 1) st  -- today's stays only
                     ON st.queue = q.queue AND st.hour IS NULL), '[]'),
        -- The oldest 20 tasks past due, with the client and the owner by name (the CRM's, else
        -- the lookup's for a client's manager); the total beside them.
        'tasks_past_due', coalesce((
            SELECT jsonb_agg(jsonb_build_object('task_id', t.id, 'number', t.e164, 'owner_id', t.owner_id,
                                                'owner', coalesce(cti.crm_employee_name(t.owner_id),
                                                                  CASE WHEN t.owner_rule = 'manager' THEN k.client_card ->> 'manager_surname' END),
                                                'client', k.client_card ->> 'client_name',
                                                'due_at', t.due_at, 'missed_calls', t.missed_calls) ORDER BY t.due_at, t.id)
              FROM (SELECT * FROM cti.callback_task t WHERE t.closed_at IS NULL AND t.due_at < now()
                     ORDER BY t.due_at, t.id LIMIT 20) t
              LEFT JOIN cti.call k ON k.id = t.last_call_id), '[]'),
        'tasks_past_due_total', (SELECT count(*) FROM cti.callback_task t WHERE t.closed_at IS NULL AND t.due_at < now()),
        -- Today (the database's time zone): inbound calls answered and ended unanswered, and
        -- the callback tasks of today's missed calls still open.
        'today', (SELECT jsonb_build_object(
                      'answered', count(*) FILTER (WHERE c.answered_at IS NOT NULL),
                      'missed', count(*) FILTER (WHERE c.answered_at IS NULL AND c.outcome IN ('missed', 'abandoned', 'busy', 'rejected')),
                      'not_called_back', (SELECT count(*) FROM cti.callback_task t
                                           WHERE t.closed_at IS NULL AND t.created_at >= current_date))
                    FROM cti.call c WHERE c.direction = 'inbound' AND c.started_at >= current_date));
END
$$;

COMMENT ON FUNCTION cti.gateway_wallboard_v1(text) IS 'Gateway: the floor now for a wallboard token (lines, desks, queues, callback tasks past due, today''s figures)';

-- The names of the release before, for a gateway of that release during an upgrade: they
-- call the _v1 functions and go in the next release.
CREATE OR REPLACE FUNCTION cti.gateway_whoami(p_token text)
RETURNS TABLE (login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.gateway_whoami_v1(p_token) $$;

CREATE OR REPLACE FUNCTION cti.gateway_pull(p_token text, p_stream text, p_after bigint DEFAULT NULL,
                                            p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.gateway_pull_v1(p_token, p_stream, p_after, p_limit) $$;

CREATE OR REPLACE FUNCTION cti.gateway_ack(p_token text, p_stream text, p_seq bigint) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.gateway_ack_v1(p_token, p_stream, p_seq) $$;

CREATE OR REPLACE FUNCTION cti.gateway_contacts(p_token text, p_call_id bigint, p_limit int DEFAULT 5)
RETURNS TABLE (call_id bigint, started_at timestamptz, direction text, outcome text, answered_by text,
               duration interval)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.gateway_contacts_v1(p_token, p_call_id, p_limit) $$;

CREATE OR REPLACE FUNCTION cti.gateway_wallboard(p_token text) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.gateway_wallboard_v1(p_token) $$;
