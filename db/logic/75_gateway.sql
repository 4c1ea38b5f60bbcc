-- Browser clients through `pgcti gateway`: tokens, and pull and ack by token.
--
-- Rules:
-- - A token acts for one desk login (bound in cti.client_login) and reaches exactly what
--   that login reaches through the client API: its own streams, nothing else.
-- - A DBA issues a token for any desk login, valid up to 90 days; a desk login may issue
--   one for itself, valid up to 24 hours. A login has at most 5 live tokens: issuing
--   another revokes its oldest. The token is shown once; the database keeps its SHA-256,
--   an expiry, who issued it and the login's role.
-- - An expired or revoked token opens nothing, nor does one whose login may no longer log
--   in (NOLOGIN, VALID UNTIL passed, dropped: the role is checked by its oid, so a new role
--   of the same name finds the old tokens dead), nor one whose login lost its binding in
--   cti.client_login (the binding's removal revokes them). A DBA lists every token with
--   gateway_tokens_v1() and revokes one by id, those of a login, or the wallboard's.
-- - A browser token reads back only what its stream has not acknowledged, and what came
--   in the last 2 minutes (a page that reconnects after a blip): not a desk's history.
-- - The gateway's login (cti_gateway) can call only the gateway_*_v1 functions (versioned
--   like the client API; the names without _v1 stay for one release): check a token, pull
--   and ack for the token's login. It reads no table, so its password alone opens no
--   desk's stream.
-- - A wallboard token (a DBA issues it for a supervisor's screen) shows the whole floor
--   now: calls ringing and talking per line, each desk's state, callback tasks past due.
--   It opens no desk's stream, and a desk token opens no wallboard.

-- The live token of a scope (its hash matches, not expired, not revoked); raises otherwise.
CREATE OR REPLACE FUNCTION cti.live_token(p_token text, p_scope text) RETURNS cti.gateway_token
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_token cti.gateway_token;
BEGIN
    SELECT t.* INTO v_token FROM cti.gateway_token t
     WHERE t.token_sha256 = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
       AND t.scope = p_scope AND t.revoked_at IS NULL AND t.expires_at > now()
       AND (t.scope <> 'desk' OR cti.may_log_in(t.login, t.login_oid));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: unknown, expired or revoked, or not a % token', p_scope
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'Ask for a new token: SELECT cti.issue_gateway_token_v1(...)';
    END IF;
    RETURN v_token;
END
$$;

-- May this role still log in? The same role (its oid, when the token knows it), LOGIN,
-- not past its VALID UNTIL.
CREATE OR REPLACE FUNCTION cti.may_log_in(p_login name, p_login_oid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = p_login AND r.oid = coalesce(p_login_oid, r.oid)
                      AND r.rolcanlogin AND coalesce(r.rolvaliduntil > now(), true))
$$;

-- A new token of a scope, shown once: the database keeps its SHA-256. At most p_max_valid
-- (90 days for a DBA, 24 hours for a desk's own); at most 5 live per login, the oldest
-- revoked to make room.
CREATE OR REPLACE FUNCTION cti.new_token(p_scope text, p_login name, p_valid interval,
                                         p_max_valid interval DEFAULT '90 days') RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_token text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
    IF p_valid IS NULL OR p_valid <= interval '0' OR p_valid > p_max_valid THEN
        RAISE EXCEPTION 'a token is valid for more than 0 and at most %, not %', p_max_valid, p_valid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_login IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('cti.gateway_token'), hashtext(p_login));
        UPDATE cti.gateway_token SET revoked_at = now()
         WHERE id IN (SELECT id FROM cti.gateway_token
                       WHERE login = p_login AND revoked_at IS NULL AND expires_at > now()
                       ORDER BY issued_at DESC, id DESC OFFSET 4);
    END IF;
    INSERT INTO cti.gateway_token (token_sha256, scope, login, login_oid, expires_at)
    VALUES (sha256(convert_to(v_token, 'UTF8')), p_scope, p_login,
            (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = p_login), now() + p_valid);
    RETURN v_token;
END
$$;

-- The binding a live desk token acts for; raises for any other token, or a login unbound since.
CREATE OR REPLACE FUNCTION cti.token_binding(p_token text) RETURNS cti.client_login
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_binding cti.client_login;
BEGIN
    SELECT b.* INTO v_binding FROM cti.client_login b
     WHERE b.login = (cti.live_token(p_token, 'desk')).login;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: its login is no longer bound to a desk'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN v_binding;
END
$$;

-- A new token for a desk login (default: the caller's own), valid for p_valid.
CREATE OR REPLACE FUNCTION cti.issue_gateway_token_v1(p_login name DEFAULT session_user,
                                                     p_valid interval DEFAULT '12 hours')
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_login <> session_user AND NOT pg_has_role(session_user, 'cti_owner', 'USAGE') THEN
        RAISE EXCEPTION 'only a DBA issues tokens for another login'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM cti.client_login WHERE login = p_login) THEN
        RAISE EXCEPTION 'login "%" is not bound to a workstation or employee', p_login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN cti.new_token('desk', p_login, p_valid,
                         CASE WHEN pg_has_role(session_user, 'cti_owner', 'USAGE') THEN interval '90 days'
                              ELSE interval '24 hours' END);
END
$$;

COMMENT ON FUNCTION cti.issue_gateway_token_v1(name, interval) IS 'A browser token for a desk login (shown once; the database keeps its hash)';

-- Revoke every live token of a login, or with NULL every wallboard token (DBA).
CREATE OR REPLACE FUNCTION cti.revoke_gateway_tokens_v1(p_login name) RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE (login = p_login OR p_login IS NULL AND scope = 'wallboard')  -- not router tokens
                  AND revoked_at IS NULL RETURNING 1)
    SELECT count(*)::int FROM r
$$;

COMMENT ON FUNCTION cti.revoke_gateway_tokens_v1(name) IS 'Revoke every live browser token of a desk login (NULL: every wallboard token); returns how many';

-- Revoke one token by its id, desk or wallboard (DBA); true when it was live.
CREATE OR REPLACE FUNCTION cti.revoke_gateway_token_v1(p_token_id bigint) RETURNS boolean
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE id = p_token_id AND revoked_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT FROM r)
$$;

COMMENT ON FUNCTION cti.revoke_gateway_token_v1(bigint) IS 'Revoke one browser token by its id (gateway_tokens_v1), desk or wallboard';

-- Every token, for a DBA: whose, who issued it, until when, and whether it opens anything
-- now (never the token itself: the database has only its hash).
CREATE OR REPLACE FUNCTION cti.gateway_tokens_v1()
RETURNS TABLE (token_id bigint, scope text, login name, issued_by name, issued_at timestamptz,
               expires_at timestamptz, revoked_at timestamptz, live boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.scope, t.login, t.issued_by, t.issued_at, t.expires_at, t.revoked_at,
           t.revoked_at IS NULL AND t.expires_at > now()
           AND (t.scope <> 'desk' OR (cti.may_log_in(t.login, t.login_oid)
                                      AND EXISTS (SELECT FROM cti.client_login b WHERE b.login = t.login)))
      FROM cti.gateway_token t
     ORDER BY t.issued_at DESC, t.id DESC
$$;

COMMENT ON FUNCTION cti.gateway_tokens_v1() IS 'Every browser token (no secret): scope, login, issuer, expiry, revocation, and whether it is live now';

-- A login unbound from its desk (or bound to another) loses its tokens: binding it again
-- later must not revive what was issued for the old binding.
CREATE OR REPLACE FUNCTION cti.tg_client_login__revoke_tokens() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE cti.gateway_token SET revoked_at = now()
     WHERE login = OLD.login AND revoked_at IS NULL;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER _500_revoke_tokens
    AFTER DELETE OR UPDATE OF login, workstation_id, employee_id ON cti.client_login
    FOR EACH ROW EXECUTE FUNCTION cti.tg_client_login__revoke_tokens();

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

-- Routing for a cloud PBX that asks a URL (58_routing.sql): a router token, issued by a DBA.
CREATE OR REPLACE FUNCTION cti.issue_router_token_v1(p_valid interval DEFAULT '365 days') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('router', NULL, p_valid, interval '730 days') $$;

COMMENT ON FUNCTION cti.issue_router_token_v1(interval) IS 'A token for the gateway''s /route (a PBX asking which extension to ring first); shown once';

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

-- A token for a supervisor who may hear every recording (DBA; the rules: 59_recordings.sql).
CREATE OR REPLACE FUNCTION cti.issue_supervisor_token_v1(p_valid interval DEFAULT '12 hours') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('supervisor', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_supervisor_token_v1(interval) IS 'A token that hears every call recording through the gateway (a supervisor); shown once';

-- A token for the supervisor wallboard (DBA): the floor now, no desk's stream.
CREATE OR REPLACE FUNCTION cti.issue_wallboard_token_v1(p_valid interval DEFAULT '30 days') RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.new_token('wallboard', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_wallboard_token_v1(interval) IS 'A token for the supervisor wallboard (shown once; the database keeps its hash)';

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
              LEFT JOIN cti.queue_stats_v1 st ON st.queue = q.queue AND st.day = current_date AND st.hour IS NULL), '[]'),
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
