-- The client API v1: what a CRM client calls (granted to cti_client in 90_grants.sql).
--
-- Rules:
-- - A client is a database login bound in cti.client_login to a workstation and/or an
--   employee; the binding is found from session_user, which a client cannot change, never
--   from a setting it could set. So a client reaches only its own streams.
-- - Catch-up protocol: LISTEN on the channels whoami_v1() names, then pull after the last
--   acknowledged seq, handle, ack; a doorbell only says "pull now".
-- - Nothing a client does with its own stream can block the writer: acknowledged positions
--   live in cti.stream_ack, apart from cti.stream whose row lock numbers new items.
-- - Versioned: a change adds _v2 beside _v1, and _v1 goes in a later release.

-- The calling login's binding; raises a clear error for a login that is not a CRM client.
CREATE OR REPLACE FUNCTION cti.my_binding() RETURNS cti.client_login
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_binding cti.client_login;
BEGIN
    SELECT * INTO v_binding FROM cti.client_login WHERE login = session_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'login "%" is not bound to a workstation or employee', session_user
            USING HINT = 'A DBA adds it: INSERT INTO cti.client_login (login, workstation_id, employee_id) ...',
                  ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_binding;
END
$$;

-- A binding's streams, their channels and where they stand (whoami_v1, and the gateway's).
CREATE OR REPLACE FUNCTION cti.streams_of(p_binding cti.client_login)
RETURNS TABLE (login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_binding.login, t.stream, t.id, cti.channel_name(t.kind, t.id),
           coalesce(s.last_seq, 0), coalesce(a.acked_seq, 0)
      FROM (VALUES ('commands', 'ws', p_binding.workstation_id),
                   ('notifications', 'emp', p_binding.employee_id)) AS t(stream, kind, id)
      LEFT JOIN cti.stream s ON s.target_kind = t.kind AND s.target_id = t.id
      LEFT JOIN cti.stream_ack a ON a.target_kind = t.kind AND a.target_id = t.id
     WHERE t.id IS NOT NULL
     ORDER BY t.stream
$$;

-- Client API v1 --------------------------------------------------------------------

-- Who am I, which channels to LISTEN on, and where my streams stand; commands first.
CREATE OR REPLACE FUNCTION cti.whoami_v1()
RETURNS TABLE (login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.streams_of(cti.my_binding()) $$;

COMMENT ON FUNCTION cti.whoami_v1() IS 'Client API v1: my login, streams, LISTEN channels, last and acknowledged sequence';

CREATE OR REPLACE FUNCTION cti.pull(p_kind text, p_id bigint, p_after bigint, p_limit int)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE  -- not sql: planned once per session on every version (50_call_facts.sql)
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.seq, o.type, o.call_id, o.payload, o.created_at
      FROM cti.outbox o
     WHERE o.target_kind = p_kind AND o.target_id = p_id
       AND o.seq > coalesce(p_after, (SELECT a.acked_seq FROM cti.stream_ack a
                                       WHERE a.target_kind = p_kind AND a.target_id = p_id), 0)
     ORDER BY o.seq
     LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000);
END
$$;

CREATE OR REPLACE FUNCTION cti.ack(p_kind text, p_id bigint, p_seq bigint) RETURNS bigint
LANGUAGE plpgsql  -- not sql: planned once per session on every version (50_call_facts.sql)
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_acked bigint;
BEGIN
    -- Capped at what was numbered, read without a lock: acking never waits for the writer,
    -- and the writer never waits for an ack (cti.stream_ack is apart from cti.stream).
    INSERT INTO cti.stream_ack AS a (target_kind, target_id, acked_seq, acked_at)
    SELECT p_kind, p_id, least(greatest(p_seq, 0), s.last_seq), now()
      FROM cti.stream s WHERE s.target_kind = p_kind AND s.target_id = p_id
    ON CONFLICT (target_kind, target_id) DO UPDATE
       SET acked_seq = greatest(a.acked_seq, EXCLUDED.acked_seq), acked_at = EXCLUDED.acked_at
    RETURNING a.acked_seq INTO v_acked;
    RETURN v_acked;
END
$$;

-- Which history this database is on: its system identifier and its WAL timeline. Promoting
-- a standby, or restoring a backup to a point in time, starts a new timeline: items a client
-- saw may be gone there, and their sequence numbers given to new items. A client compares
-- the epoch on every connect; when it changed, it forgets any cursor of its own and pulls
-- from its acknowledged position (docs/crm-clients.md). Read on a primary (what clients use).
CREATE OR REPLACE FUNCTION cti.epoch_v1() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.system_identifier::text || '.' || ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int
      FROM pg_control_system() s
$$;

COMMENT ON FUNCTION cti.epoch_v1() IS 'Client API v1: the database''s history (system id.timeline); a change means sequence numbers may have restarted';

-- Card commands for my workstation after p_after (default: after what I acknowledged).
CREATE OR REPLACE FUNCTION cti.pull_commands_v1(p_after bigint DEFAULT NULL, p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.pull('ws', (cti.my_binding()).workstation_id, p_after, p_limit) $$;

COMMENT ON FUNCTION cti.pull_commands_v1(bigint, int) IS 'Client API v1: card commands for my workstation with seq > p_after (default: my ack), oldest first';

CREATE OR REPLACE FUNCTION cti.ack_commands_v1(p_seq bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.ack('ws', (cti.my_binding()).workstation_id, p_seq) $$;

COMMENT ON FUNCTION cti.ack_commands_v1(bigint) IS 'Client API v1: mark my workstation''s commands up to p_seq handled; returns the acknowledged seq';

-- Ring notifications for me (an employee) after p_after (default: after what I acknowledged).
CREATE OR REPLACE FUNCTION cti.pull_notifications_v1(p_after bigint DEFAULT NULL, p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.pull('emp', (cti.my_binding()).employee_id, p_after, p_limit) $$;

COMMENT ON FUNCTION cti.pull_notifications_v1(bigint, int) IS 'Client API v1: ring notifications for me with seq > p_after (default: my ack), oldest first';

CREATE OR REPLACE FUNCTION cti.ack_notifications_v1(p_seq bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.ack('emp', (cti.my_binding()).employee_id, p_seq) $$;

COMMENT ON FUNCTION cti.ack_notifications_v1(bigint) IS 'Client API v1: mark my notifications up to p_seq handled; returns the acknowledged seq';

-- My open callback tasks (57_callbacks.sql), the most overdue first.
CREATE OR REPLACE FUNCTION cti.callback_tasks_v1()
RETURNS TABLE (task_id bigint, number text, client_id bigint, client_name text, dialled text,
               missed_calls int, created_at timestamptz, due_at timestamptz, last_call_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.e164, t.client_id, c.client_card ->> 'client_name', t.dialled,
           t.missed_calls, t.created_at, t.due_at, t.last_call_id
      FROM cti.callback_task t
      JOIN cti.call c ON c.id = t.last_call_id
     WHERE t.closed_at IS NULL AND t.owner_id = (cti.my_binding()).employee_id
     ORDER BY t.due_at, t.id
$$;

COMMENT ON FUNCTION cti.callback_tasks_v1() IS 'Client API v1: my open callback tasks (missed calls to call back), the most overdue first';

-- Click-to-call (the rules: 54_dialing.sql).

-- Client API v1: dial a number from my desk's extension; returns the request's id.
CREATE OR REPLACE FUNCTION cti.dial_v1(p_number text, p_client_id bigint DEFAULT NULL) RETURNS uuid
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.dial_for(cti.my_binding(), p_number, p_client_id) $$;

COMMENT ON FUNCTION cti.dial_v1(text, bigint) IS 'Client API v1: place a call from my desk''s extension to a number (click-to-call); returns the request id';

-- Client API v1: my recent requests (the last day by default), newest first.
CREATE OR REPLACE FUNCTION cti.dial_requests_v1(p_since interval DEFAULT '1 day')
RETURNS TABLE (request_id uuid, number text, client_id bigint, state text, reason text,
               requested_at timestamptz, sent_at timestamptz, decided_at timestamptz,
               call_id bigint, call_link text, call_outcome text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.dial_requests_of((cti.my_binding()).login, p_since) $$;

COMMENT ON FUNCTION cti.dial_requests_v1(interval) IS 'Client API v1: my click-to-call requests, newest first: state, reason, the call placed';

-- Presence (the rules: 56_presence.sql).

-- Client API v1: set my desk's presence: 'away' or 'dnd' (until p_until, or until changed),
-- or 'available'. Returns the state that counts now.
CREATE OR REPLACE FUNCTION cti.set_presence_v1(p_state text, p_until timestamptz DEFAULT NULL) RETURNS text
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.set_desk_presence(cti.my_binding(), p_state, p_until) $$;

COMMENT ON FUNCTION cti.set_presence_v1(text, timestamptz) IS 'Client API v1: my desk is away, in do not disturb (until a time), or available';

-- Client API v1: every extension's presence now (who is free).
CREATE OR REPLACE FUNCTION cti.presence_v1()
RETURNS TABLE (extension text, state text, since timestamptz, paused_reason text, until timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.presence_now() $$;

COMMENT ON FUNCTION cti.presence_v1() IS 'Client API v1: each extension''s presence (available, busy, ringing, offline, paused, away, dnd, unknown) and since when';
