-- The command outbox with gap-free per-target sequences, NOTIFY doorbells, and the client API v1.
-- depends: 0006_call_model

SET LOCAL ROLE cti_owner;

-- A stream per target: a workstation ('ws', card commands) or an employee ('emp', ring
-- notifications). last_seq is taken under this row's lock, held to commit, so sequences
-- become visible in order and without holes: a client that saw N has seen everything up to N.
CREATE TABLE cti.stream (
    target_kind text NOT NULL CHECK (target_kind IN ('ws', 'emp')),
    target_id bigint NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    acked_seq bigint NOT NULL DEFAULT 0,
    acked_at timestamptz,
    PRIMARY KEY (target_kind, target_id)
);

CREATE TABLE cti.outbox (
    target_kind text NOT NULL,
    target_id bigint NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL CHECK (type IN ('ring', 'open_card', 'close_card', 'call_ended')),
    call_id bigint NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (target_kind, target_id, seq),
    FOREIGN KEY (target_kind, target_id) REFERENCES cti.stream (target_kind, target_id)
);
COMMENT ON TABLE cti.outbox IS 'Every command and notification for CRM clients, per target in sequence order; clients pull and ack';

-- Which database login is which CRM client. Bound to the login itself (session_user,
-- which a client cannot change), never to a setting the client could set.
CREATE TABLE cti.client_login (
    login name PRIMARY KEY,
    workstation_id bigint,
    employee_id bigint,
    CHECK (workstation_id IS NOT NULL OR employee_id IS NOT NULL)
);
COMMENT ON TABLE cti.client_login IS 'CRM client logins (members of cti_client) and the workstation / employee each one is';

CREATE FUNCTION cti.channel_name(p_kind text, p_id bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'cti_' || p_kind || '_v1_' || p_id $$;
COMMENT ON FUNCTION cti.channel_name(text, bigint) IS 'LISTEN channel of a stream: cti_ws_v1_<workstation id>, cti_emp_v1_<employee id>';

-- Append one command to a target's stream and ring its doorbell. The doorbell carries
-- the type and ids only: any role may LISTEN on any channel.
CREATE FUNCTION cti.enqueue(p_kind text, p_id bigint, p_type text, p_call_id bigint, p_payload jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_seq bigint;
BEGIN
    INSERT INTO cti.stream AS s (target_kind, target_id, last_seq) VALUES (p_kind, p_id, 1)
    ON CONFLICT (target_kind, target_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING s.last_seq INTO v_seq;
    INSERT INTO cti.outbox (target_kind, target_id, seq, type, call_id, payload)
    VALUES (p_kind, p_id, v_seq, p_type, p_call_id, p_payload);
    PERFORM pg_notify(cti.channel_name(p_kind, p_id),
                      json_build_object('type', p_type, 'seq', v_seq, 'call_id', p_call_id)::text);
    RETURN v_seq;
END
$$;

-- The calling login's binding; raises a clear error for a login that is not a CRM client.
CREATE FUNCTION cti.my_binding() RETURNS cti.client_login
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

-- Client API v1 --------------------------------------------------------------------

-- Who am I, which channels to LISTEN on, and where my streams stand.
CREATE FUNCTION cti.whoami_v1()
RETURNS TABLE (login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.login, t.stream, t.id, cti.channel_name(t.kind, t.id),
           coalesce(s.last_seq, 0), coalesce(s.acked_seq, 0)
      FROM cti.my_binding() b
     CROSS JOIN LATERAL (VALUES ('commands', 'ws', b.workstation_id),
                                ('notifications', 'emp', b.employee_id)) AS t(stream, kind, id)
      LEFT JOIN cti.stream s ON s.target_kind = t.kind AND s.target_id = t.id
     WHERE t.id IS NOT NULL
$$;

CREATE FUNCTION cti.pull(p_kind text, p_id bigint, p_after bigint, p_limit int)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.seq, o.type, o.call_id, o.payload, o.created_at
      FROM cti.outbox o
     WHERE o.target_kind = p_kind AND o.target_id = p_id
       AND o.seq > coalesce(p_after, (SELECT s.acked_seq FROM cti.stream s
                                       WHERE s.target_kind = p_kind AND s.target_id = p_id), 0)
     ORDER BY o.seq
     LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000)
$$;

CREATE FUNCTION cti.ack(p_kind text, p_id bigint, p_seq bigint) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE cti.stream SET acked_seq = greatest(acked_seq, least(p_seq, last_seq)), acked_at = now()
     WHERE target_kind = p_kind AND target_id = p_id
    RETURNING acked_seq
$$;

-- Card commands for my workstation after p_after (default: after what I acknowledged).
CREATE FUNCTION cti.pull_commands_v1(p_after bigint DEFAULT NULL, p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.pull('ws', (cti.my_binding()).workstation_id, p_after, p_limit) $$;

CREATE FUNCTION cti.ack_commands_v1(p_seq bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.ack('ws', (cti.my_binding()).workstation_id, p_seq) $$;

-- Ring notifications for me (an employee) after p_after (default: after what I acknowledged).
CREATE FUNCTION cti.pull_notifications_v1(p_after bigint DEFAULT NULL, p_limit int DEFAULT 100)
RETURNS TABLE (seq bigint, type text, call_id bigint, payload jsonb, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM cti.pull('emp', (cti.my_binding()).employee_id, p_after, p_limit) $$;

CREATE FUNCTION cti.ack_notifications_v1(p_seq bigint) RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.ack('emp', (cti.my_binding()).employee_id, p_seq) $$;

COMMENT ON FUNCTION cti.whoami_v1() IS 'Client API v1: my login, streams, LISTEN channels, last and acknowledged sequence';
COMMENT ON FUNCTION cti.pull_commands_v1(bigint, int) IS 'Client API v1: card commands for my workstation with seq > p_after (default: my ack), oldest first';
COMMENT ON FUNCTION cti.ack_commands_v1(bigint) IS 'Client API v1: mark my workstation''s commands up to p_seq handled; returns the acknowledged seq';
COMMENT ON FUNCTION cti.pull_notifications_v1(bigint, int) IS 'Client API v1: ring notifications for me with seq > p_after (default: my ack), oldest first';
COMMENT ON FUNCTION cti.ack_notifications_v1(bigint) IS 'Client API v1: mark my notifications up to p_seq handled; returns the acknowledged seq';
